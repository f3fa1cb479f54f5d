"""The bounded decode pool: at most `max_decodes` images are decoded at once, and a
request that finds every worker busy gets 503 + Retry-After before anything of its
image is decoded."""

import asyncio
import base64
import threading
from pathlib import Path

import numpy as np
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from serve.app import create_app
from serve.config import Limits, ServeConfig
from serve.service import service_of
from tests.serve.test_predict import drawn

DIGIT = np.zeros((28, 28), np.uint8)
DIGIT[5:23, 12:16] = 255  # a bar: a "1"


def test_a_busy_pool_refuses_before_decoding(model_path: Path) -> None:
    async def main() -> None:
        app = create_app(model_path, "mnist", ServeConfig(limits=Limits(max_decodes=1)))
        async with AsyncTestClient(app) as client:
            pool = service_of(app).decodes
            gate = threading.Event()
            holder = asyncio.create_task(pool.run(gate.wait))  # the only worker, held
            while pool.busy < 1:
                await asyncio.sleep(0.001)
            png = drawn(DIGIT)
            for body in (png, b"\x89PNG\r\n\x1a\n not an image at all"):
                r = await client.post("/v1/predict", content=body,
                                      headers={"content-type": "image/png"})
                # 503, not 400: the garbage was never looked at.
                assert r.status_code == 503, r.text
                assert r.headers["retry-after"] == "1" and "busy" in r.json()["error"]
            r = await client.post("/v1/predict", json={"image": base64.b64encode(png).decode()})
            assert r.status_code == 503
            # JSON pixels need no decoding: served while the pool is full.
            r = await client.post("/v1/predict", json={"pixels": DIGIT.tolist()})
            assert r.status_code == 200
            gate.set()
            assert await holder is True
            while pool.busy:
                await asyncio.sleep(0.001)
            r = await client.post("/v1/predict", content=png, headers={"content-type": "image/png"})
            assert r.status_code == 200 and r.json()["digit"] == 1, r.text
            metrics = (await client.get("/metrics")).text
        values = {s.name: s.value for f in text_string_to_metric_families(metrics)
                  for s in f.samples}
        assert values["ablate_image_decodes_rejected_total"] == 3
        assert values["ablate_image_decodes"] == 0
    asyncio.run(main())


def test_a_worker_stays_busy_until_its_decode_ends_even_if_the_request_is_gone(
        model_path: Path) -> None:
    """Cancelling the waiting request must not free the worker early: its thread is
    still decoding, and that memory is what the bound is for."""
    async def main() -> None:
        app = create_app(model_path, "mnist", ServeConfig(limits=Limits(max_decodes=1)))
        async with AsyncTestClient(app):
            pool = service_of(app).decodes
            gate = threading.Event()
            waiter = asyncio.create_task(pool.run(gate.wait))
            while pool.busy < 1:
                await asyncio.sleep(0.001)
            waiter.cancel()
            await asyncio.sleep(0.05)
            assert pool.busy == 1  # the thread still runs
            gate.set()
            for _ in range(1000):
                if not pool.busy:
                    break
                await asyncio.sleep(0.001)
            assert pool.busy == 0
    asyncio.run(main())
