"""The Open Inference Protocol REST API: golden requests and responses."""

import json
from pathlib import Path

import numpy as np
import pytest
from litestar.testing import TestClient

from ablate.data import load_npz
from tests.data_fixtures import SUBSET, subset_expected
from tests.serve import oracle


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    mnist = load_npz(SUBSET, subset_expected())
    return mnist.x_test[:4], mnist.y_test[:4]  # (4, 28, 28) uint8, (4,)


def version_of(model_path: Path) -> str:
    return json.loads(model_path.with_suffix(".json").read_text())["version"]


def test_server_metadata_and_health(client: TestClient) -> None:
    r = client.get("/v2")
    assert (r.status_code, r.json()) == (200, {"name": "ablate-serve", "version": "0.1.0",
                                               "extensions": ["binary_tensor_data"]})
    r = client.get("/v2/health/live")
    assert (r.status_code, r.json()) == (200, {"live": True})
    r = client.get("/v2/health/ready")
    assert r.status_code == 200 and r.json()["ready"] is True


def test_model_metadata_golden(client: TestClient, model_path: Path) -> None:
    v = version_of(model_path)
    want = {
        "name": "mnist", "versions": [v], "platform": "pytorch",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 784]}],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
                    {"name": "label", "datatype": "INT64", "shape": [-1]}],
    }
    for path in ("/v2/models/mnist", f"/v2/models/mnist/versions/{v}"):
        r = client.get(path)
        assert (r.status_code, r.json()) == (200, want)
        assert r.headers["content-type"].startswith("application/json")
    for path in ("/v2/models/mnist/ready", f"/v2/models/mnist/versions/{v}/ready"):
        r = client.get(path)
        assert (r.status_code, r.json()) == (200, {"name": "mnist", "ready": True})


def test_infer_golden(client: TestClient, model_path: Path, digits) -> None:
    x, _ = digits
    request = {"id": "req-42", "inputs": [
        {"name": "input", "shape": [2, 784], "datatype": "UINT8",
         "data": x[:2].reshape(-1).tolist()}]}
    r = client.post("/v2/models/mnist/infer", json=request)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"model_name", "model_version", "id", "outputs"}
    assert body["model_name"] == "mnist" and body["id"] == "req-42"
    assert body["model_version"] == version_of(model_path)
    probs, label = body["outputs"]
    assert {k: probs[k] for k in ("name", "shape", "datatype")} == {
        "name": "probabilities", "shape": [2, 10], "datatype": "FP32"}
    assert {k: label[k] for k in ("name", "shape", "datatype")} == {
        "name": "label", "shape": [2], "datatype": "INT64"}
    p = np.asarray(probs["data"]).reshape(2, 10)
    want = oracle.forward(model_path, x[:2].reshape(2, 784) / 255.0)
    np.testing.assert_allclose(p, want, atol=2e-5)  # float32 model vs float64 oracle
    assert label["data"] == want.argmax(1).tolist()


@pytest.mark.parametrize("shape, nest", [
    ([3, 784], False), ([3, 784], True), ([3, 28, 28], False), ([3, 28, 28], True),
    ([3, 1, 28, 28], False), ([3, 1, 28, 28], True),
])
@pytest.mark.parametrize("datatype", ["FP32", "UINT8"])
def test_every_layout_and_datatype_gives_the_same_answer(
        client: TestClient, model_path: Path, digits, shape: list[int], nest: bool,
        datatype: str) -> None:
    x = digits[0][:3]
    values = x / 255.0 if datatype == "FP32" else x
    data = values.reshape(shape).tolist() if nest else values.reshape(-1).tolist()
    r = client.post("/v2/models/mnist/infer", json={"inputs": [
        {"name": "input", "shape": shape, "datatype": datatype, "data": data}]})
    assert r.status_code == 200, r.text
    assert "id" not in r.json()  # no id asked, none answered
    p = np.asarray(r.json()["outputs"][0]["data"]).reshape(3, 10)
    np.testing.assert_allclose(p, oracle.forward(model_path, x.reshape(3, 784) / 255.0),
                               atol=2e-5)


def test_versioned_infer_and_requested_outputs(client: TestClient, model_path: Path,
                                               digits) -> None:
    v = version_of(model_path)
    request = {"inputs": [{"name": "input", "shape": [1, 28, 28], "datatype": "UINT8",
                           "data": digits[0][:1].tolist()}],
               "outputs": [{"name": "label", "parameters": {"binary_data": False}}],
               "parameters": {"anything": 1}}
    r = client.post(f"/v2/models/mnist/versions/{v}/infer", json=request)
    assert r.status_code == 200, r.text
    outputs = r.json()["outputs"]
    assert [o["name"] for o in outputs] == ["label"] and outputs[0]["shape"] == [1]


def test_unknown_models_and_versions_are_404_with_an_error_body(client: TestClient) -> None:
    body = {"inputs": [{"name": "input", "shape": [1, 784], "datatype": "UINT8",
                        "data": [0] * 784}]}
    for method, path in [("GET", "/v2/models/other"), ("GET", "/v2/models/other/ready"),
                         ("GET", "/v2/models/mnist/versions/999"),
                         ("GET", "/v2/models/mnist/versions/999/ready"),
                         ("POST", "/v2/models/other/infer"),
                         ("POST", "/v2/models/mnist/versions/999/infer"),
                         ("GET", "/v3/nothing")]:
        r = client.request(method, path, json=body if method == "POST" else None)
        assert r.status_code == 404, path
        assert set(r.json()) == {"error"}
        assert "other" not in r.json()["error"] and "999" not in r.json()["error"]


def test_wrong_method_is_405_with_an_error_body(client: TestClient) -> None:
    r = client.get("/v2/models/mnist/infer")
    assert r.status_code == 405 and set(r.json()) == {"error"}


def test_openapi_schema_is_served(client: TestClient) -> None:
    schema = client.get("/schema/openapi.json").json()
    paths = schema["paths"]
    for p in ("/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/{model}",
              "/v2/models/{model}/versions/{model_version}", "/v2/models/{model}/ready",
              "/v2/models/{model}/infer", "/v2/models/{model}/versions/{model_version}/infer",
              "/v1/predict", "/metrics"):
        assert p in paths, p
    body = paths["/v2/models/{model}/infer"]["post"]["requestBody"]
    assert "inputs" in body["content"]["application/json"]["schema"]["properties"]


def binary_request(header: dict, blobs: list[bytes]) -> tuple[bytes, dict[str, str]]:
    """A request in the binary tensor data extension, framed as tritonclient frames it."""
    head = json.dumps(header).encode()
    return head + b"".join(blobs), {"Inference-Header-Content-Length": str(len(head)),
                                    "Content-Type": "application/octet-stream"}


def split_binary(r) -> tuple[dict, bytes]:
    n = int(r.headers["inference-header-content-length"])
    return json.loads(r.content[:n]), r.content[n:]


@pytest.mark.parametrize("datatype", ["FP32", "UINT8"])
def test_binary_tensor_data_extension(client: TestClient, model_path: Path, digits,
                                      datatype: str) -> None:
    """tritonclient's default framing: binary input, binary outputs (no outputs named)."""
    assert "binary_tensor_data" in client.get("/v2").json()["extensions"]
    x = digits[0][:3]
    raw = (x / 255.0).astype("<f4").tobytes() if datatype == "FP32" else x.tobytes()
    body, headers = binary_request(
        {"id": "b", "inputs": [{"name": "input", "shape": [3, 28, 28], "datatype": datatype,
                                "parameters": {"binary_data_size": len(raw)}}],
         "parameters": {"binary_data_output": True}}, [raw])
    r = client.post("/v2/models/mnist/infer", content=body, headers=headers)
    assert r.status_code == 200, r.text
    head, tail = split_binary(r)
    assert head["id"] == "b" and head["model_name"] == "mnist"
    probs_meta, label_meta = head["outputs"]
    assert probs_meta == {"name": "probabilities", "shape": [3, 10], "datatype": "FP32",
                          "parameters": {"binary_data_size": 120}}
    assert label_meta == {"name": "label", "shape": [3], "datatype": "INT64",
                          "parameters": {"binary_data_size": 24}}
    probs = np.frombuffer(tail[:120], "<f4").reshape(3, 10)
    labels = np.frombuffer(tail[120:], "<i8")
    want = oracle.forward(model_path, x.reshape(3, 784) / 255.0)
    np.testing.assert_allclose(probs, want, atol=2e-5)  # float32 model vs float64 oracle
    assert labels.tolist() == want.argmax(1).tolist()


def test_binary_outputs_can_be_chosen_one_by_one(client: TestClient, digits) -> None:
    x = digits[0][:1]
    r = client.post("/v2/models/mnist/infer", json={
        "inputs": [{"name": "input", "shape": [1, 784], "datatype": "UINT8",
                    "data": x.reshape(-1).tolist()}],
        "outputs": [{"name": "probabilities"}, {"name": "label",
                                                "parameters": {"binary_data": True}}]})
    assert r.status_code == 200
    head, tail = split_binary(r)
    assert len(head["outputs"][0]["data"]) == 10 and "data" not in head["outputs"][1]
    assert np.frombuffer(tail, "<i8").tolist() == [int(np.argmax(head["outputs"][0]["data"]))]


def test_health_follows_the_batcher_and_answers_head(model_path: Path) -> None:
    """Live while the batcher's worker can run (running, or restartable); ready while it
    runs. When it has stopped (given up after repeated failures, or shut down) both
    answer 503, so an orchestrator restarts the server. HEAD works on every health
    route, as load balancers probe with it."""
    from serve.app import create_app
    from serve.service import service_of

    v = version_of(model_path)
    routes = ["/v2/health/live", "/v2/health/ready", "/v2/models/mnist/ready",
              f"/v2/models/mnist/versions/{v}/ready"]
    app = create_app(model_path)
    with TestClient(app) as client:
        for path in routes:
            assert client.get(path).status_code == 200, path
            head = client.head(path)
            assert head.status_code == 200 and head.content == b"", path
        client.blocking_portal.call(service_of(app).batcher.stop)
        for path in routes:
            assert client.get(path).status_code == 503, path
            assert client.head(path).status_code == 503, path
        assert client.get("/v2/health/live").json() == {"live": False}
        assert client.get("/v2/health/ready").json() == {"ready": False, "live": False}


def test_a_per_output_binary_data_false_overrides_binary_data_output(client: TestClient,
                                                                     digits) -> None:
    """The binary extension: an output's own `binary_data` wins over the request-wide
    `binary_data_output`, either way."""
    x = digits[0][:1]
    r = client.post("/v2/models/mnist/infer", json={
        "inputs": [{"name": "input", "shape": [1, 784], "datatype": "UINT8",
                    "data": x.reshape(-1).tolist()}],
        "parameters": {"binary_data_output": True},
        "outputs": [{"name": "probabilities", "parameters": {"binary_data": False}},
                    {"name": "label"}]})
    assert r.status_code == 200, r.text
    head, tail = split_binary(r)
    probs, label = head["outputs"]
    assert len(probs["data"]) == 10 and "parameters" not in probs
    assert label["parameters"] == {"binary_data_size": 8} and "data" not in label
    assert np.frombuffer(tail, "<i8").tolist() == [int(np.argmax(probs["data"]))]


def test_the_schema_is_json_only_with_nothing_from_a_cdn(client: TestClient) -> None:
    for path in ("/schema", "/schema/openapi.json"):
        r = client.get(path)
        assert r.status_code == 200 and r.json()["info"]["title"] == "ablate digit service"
        assert "json" in r.headers["content-type"]
    assert client.get("/schema/swagger").status_code == 404


@pytest.mark.parametrize("path", ["/", "/static/app.js", "/v2", "/v1/model", "/metrics",
                                  "/nowhere", "/schema"])
def test_every_answer_says_nosniff_and_the_page_has_a_strict_policy(client: TestClient,
                                                                     path: str) -> None:
    r = client.get(path)
    assert r.headers["x-content-type-options"] == "nosniff"
    policy = dict(d.strip().split(" ", 1) for d in r.headers["content-security-policy"].split(";"))
    # Only this server's scripts, styles and connections; no framing, no plugins.
    assert policy["default-src"] == "'none'" and policy["script-src"] == "'self'"
    assert policy["connect-src"] == "'self'" and policy["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in r.headers["content-security-policy"]
