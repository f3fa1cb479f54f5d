"""`ablate serve RUN_DIR` for real: exported on the fly, loopback, concurrent clients."""

import asyncio
from pathlib import Path

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from ablate.data import load_npz
from tests.data_fixtures import SUBSET, subset_expected
from tests.serve import oracle


def test_serving_a_run_directory_exports_its_best_run(live_server: str, model_path: Path
                                                      ) -> None:
    assert live_server.startswith("http://127.0.0.1:")
    meta = httpx.get(f"{live_server}/v2/models/mnist").json()
    # The on-the-fly export is the same run (same weights) as `ablate export`'s.
    assert meta["versions"] == [oracle_version(model_path)]
    page = httpx.get(f"{live_server}/")
    assert page.status_code == 200 and "<canvas" in page.text
    assert httpx.get(f"{live_server}/static/app.js").status_code == 200


def oracle_version(model_path: Path) -> str:
    import json
    return json.loads(model_path.with_suffix(".json").read_text())["version"]


def test_64_concurrent_clients_each_get_their_own_answer(live_server: str, model_path: Path
                                                         ) -> None:
    x = load_npz(SUBSET, subset_expected()).x_test[:64].reshape(64, 784)
    want = oracle.forward(model_path, x / 255.0)

    async def one(client: httpx.AsyncClient, i: int) -> np.ndarray:
        r = await client.post(f"{live_server}/v2/models/mnist/infer", json={
            "id": str(i), "inputs": [{"name": "input", "shape": [1, 784], "datatype": "UINT8",
                                      "data": x[i].tolist()}]})
        assert r.status_code == 200 and r.json()["id"] == str(i)
        return np.asarray(r.json()["outputs"][0]["data"])

    async def main() -> list[np.ndarray]:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            return await asyncio.gather(*(one(client, i) for i in range(64)))

    got = np.stack(asyncio.run(main()))
    np.testing.assert_allclose(got, want, atol=2e-5)  # f32 vs the f64 oracle, row by row
    metrics = httpx.get(f"{live_server}/metrics").text
    values = {s.name: s.value for f in text_string_to_metric_families(metrics)
              for s in f.samples if not s.labels}
    # Concurrent requests shared forward passes.
    assert values["ablate_inference_batches_total"] < values["ablate_inference_items_total"]
