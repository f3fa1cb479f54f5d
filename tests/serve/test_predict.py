"""The friendly endpoint: JSON pixels, or a PNG/JPEG as base64, data URL, upload or body."""

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from litestar.testing import TestClient
from PIL import Image

from ablate.data import load_npz
from tests.data_fixtures import SUBSET, subset_expected
from tests.serve import oracle


@pytest.fixture(scope="module")
def digit() -> tuple[np.ndarray, int]:
    mnist = load_npz(SUBSET, subset_expected())
    return mnist.x_test[0], int(mnist.y_test[0])


def drawn(digit: np.ndarray) -> bytes:
    """The digit drawn dark on white, big and off-centre, as a PNG."""
    big = np.asarray(Image.fromarray(255 - digit).resize((168, 168), Image.Resampling.BILINEAR))
    page = np.full((300, 400), 255, np.uint8)
    page[100:268, 210:378] = big
    buf = io.BytesIO()
    Image.fromarray(page).save(buf, format="PNG")
    return buf.getvalue()


def check(body: dict, model_path: Path) -> None:
    assert set(body) == {"digit", "probabilities", "model_name", "model_version"}
    p = np.asarray(body["probabilities"])
    assert p.shape == (10,) and abs(p.sum() - 1) < 1e-5 and body["digit"] == int(p.argmax())
    assert body["model_name"] == "mnist"
    assert body["model_version"] == oracle_version(model_path)


def oracle_version(model_path: Path) -> str:
    import json
    return json.loads(model_path.with_suffix(".json").read_text())["version"]


@pytest.mark.parametrize("layout", ["flat", "rows"])
def test_pixels_are_used_as_given(client: TestClient, model_path: Path, digit, layout: str
                                  ) -> None:
    x, _ = digit
    pixels = x.reshape(-1).tolist() if layout == "flat" else x.tolist()
    r = client.post("/v1/predict", json={"pixels": pixels})
    assert r.status_code == 200, r.text
    check(r.json(), model_path)
    want = oracle.forward(model_path, x.reshape(1, 784) / 255.0)[0]
    np.testing.assert_allclose(r.json()["probabilities"], want, atol=2e-5)  # f32 vs f64


def test_image_in_every_envelope_gives_one_answer(client: TestClient, model_path: Path,
                                                  digit) -> None:
    png = drawn(digit[0])
    b64 = base64.b64encode(png).decode()
    answers = [
        client.post("/v1/predict", json={"image": b64}),
        client.post("/v1/predict", json={"image": "data:image/png;base64," + b64}),
        client.post("/v1/predict", files={"image": ("digit.png", png, "image/png")}),
        client.post("/v1/predict", content=png, headers={"content-type": "image/png"}),
    ]
    for r in answers:
        assert r.status_code == 200, r.text
        check(r.json(), model_path)
    assert len({tuple(r.json()["probabilities"]) for r in answers}) == 1


def test_a_drawn_digit_reads_like_the_original(client: TestClient, model_path: Path,
                                               digit) -> None:
    x, _ = digit
    r = client.post("/v1/predict", json={"image": base64.b64encode(drawn(x)).decode(),
                                         "show_input": True})
    assert r.status_code == 200
    body = r.json()
    seen = np.asarray(body["input"], dtype=np.float64).reshape(28, 28)
    assert np.corrcoef(seen.ravel(), x.ravel())[0, 1] > 0.8  # the preparation recovered it
    original = oracle.forward(model_path, x.reshape(1, 784) / 255.0)[0]
    assert body["digit"] == int(original.argmax())


def test_model_description(client: TestClient, model_path: Path) -> None:
    r = client.get("/v1/model")
    assert r.status_code == 200
    m = r.json()
    assert m["name"] == "mnist" and m["version"] == oracle_version(model_path)
    assert m["study"] == "dropout" and m["arm"].startswith("dropout=")
    assert 0 < m["metrics"]["val_accuracy"] <= 1 and m["selected_on"] == "val_accuracy"
