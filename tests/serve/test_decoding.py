"""The bounded decode pool: at most `max_decodes` images are decoded at once, and a
request that finds every worker busy gets 503 + Retry-After before anything of its
image is decoded."""

import base64
import threading
import time
from concurrent.futures import CancelledError
from pathlib import Path

import numpy as np
import pytest
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from serve.app import create_app
from serve.config import Limits, ServeConfig
from serve.decoding import DecodePool
from serve.service import service_of
from tests.serve.test_predict import drawn

DIGIT = np.zeros((28, 28), np.uint8)
DIGIT[5:23, 12:16] = 255  # a bar: a "1"


def settle(pool: DecodePool, busy: int) -> None:
    """Wait (bounded) until `busy` workers are taken: the app runs in another thread."""
    deadline = time.monotonic() + 10
    while pool.busy != busy and time.monotonic() < deadline:
        time.sleep(0.001)
    assert pool.busy == busy


def test_a_busy_pool_refuses_before_decoding(model_path: Path) -> None:
    app = create_app(model_path, "mnist", ServeConfig(limits=Limits(max_decodes=1)))
    with TestClient(app) as client:
        pool = service_of(app).decodes
        gate = threading.Event()
        holder = client.blocking_portal.start_task_soon(pool.run, gate.wait)  # the only worker
        settle(pool, 1)
        png = drawn(DIGIT)
        for body in (png, b"\x89PNG\r\n\x1a\n not an image at all"):
            r = client.post("/v1/predict", content=body, headers={"content-type": "image/png"})
            # 503, not 400: the garbage was never looked at.
            assert r.status_code == 503, r.text
            assert r.headers["retry-after"] == "1" and "busy" in r.json()["error"]
        r = client.post("/v1/predict", json={"image": base64.b64encode(png).decode()})
        assert r.status_code == 503
        # JSON pixels need no decoding: served while the pool is full.
        assert client.post("/v1/predict", json={"pixels": DIGIT.tolist()}).status_code == 200
        gate.set()
        assert holder.result(timeout=10) is True
        settle(pool, 0)
        r = client.post("/v1/predict", content=png, headers={"content-type": "image/png"})
        assert r.status_code == 200 and r.json()["digit"] == 1, r.text
        metrics = client.get("/metrics").text
    values = {s.name: s.value for f in text_string_to_metric_families(metrics)
              for s in f.samples}
    assert values["ablate_image_decodes_rejected_total"] == 3
    assert values["ablate_image_decodes"] == 0


def test_a_worker_stays_busy_until_its_decode_ends_even_if_the_request_is_gone(
        model_path: Path) -> None:
    """Cancelling the waiting request must not free the worker early: its thread is
    still decoding, and that memory is what the bound is for."""
    app = create_app(model_path, "mnist", ServeConfig(limits=Limits(max_decodes=1)))
    with TestClient(app) as client:
        pool = service_of(app).decodes
        gate = threading.Event()
        waiter = client.blocking_portal.start_task_soon(pool.run, gate.wait)
        settle(pool, 1)
        waiter.cancel()
        with pytest.raises(CancelledError):
            waiter.result(timeout=10)
        assert pool.busy == 1  # the thread still runs
        r = client.post("/v1/predict", content=drawn(DIGIT), headers={"content-type": "image/png"})
        assert r.status_code == 503
        gate.set()
        settle(pool, 0)
