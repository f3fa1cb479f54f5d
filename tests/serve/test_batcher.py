"""The micro-batcher, with a stand-in model that records every forward pass."""

import asyncio
import threading
import time

import numpy as np
import pytest

from serve.batcher import MAX_RESTARTS, Batcher
from serve.config import BatchConfig
from serve.errors import ApiError
from serve.metrics import Metrics


class Model:
    """predict(x) -> x[:, :10] (so each request can check it got its own rows); records
    batch sizes; optionally slow (it blocks the loop, as a forward pass does)."""

    def __init__(self, seconds: float = 0.0, fail: bool = False, garbage: int = 0) -> None:
        self.seconds, self.fail = seconds, fail
        self.garbage = garbage  # answer None (no array) this many times
        self.batches: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        with self.lock:
            self.batches.append(len(x))
        if self.seconds:
            time.sleep(self.seconds)
        if self.fail:
            raise RuntimeError("boom")
        if self.garbage:
            self.garbage -= 1
            return None  # type: ignore[return-value]  # a broken model wrapper
        return x[:, :10].copy()


def images(n: int, tag: float) -> np.ndarray:
    return np.full((n, 784), tag, dtype=np.float32)


async def started(model: Model, **config: object) -> tuple[Batcher, Metrics]:
    metrics = Metrics()
    b = Batcher(model, BatchConfig(**config), metrics)  # type: ignore[arg-type]
    await b.start()
    return b, metrics


def value(metrics: Metrics, name: str) -> float:
    return float(metrics.registry.get_sample_value(name) or 0.0)


def test_concurrent_requests_share_forward_passes_and_get_their_own_rows() -> None:
    async def main() -> None:
        model = Model(seconds=0.02)
        b, m = await started(model, max_batch=64, max_wait_ms=5)
        xs = [images(1 + i % 3, float(i)) for i in range(30)]
        outs = await asyncio.gather(*(b.infer(x) for x in xs))
        for x, out in zip(xs, outs, strict=True):
            np.testing.assert_array_equal(out, x[:, :10])  # exactly its own rows
        total = sum(len(x) for x in xs)
        assert sum(model.batches) == total and len(model.batches) < len(xs) / 3
        assert value(m, "ablate_inference_items_total") == total
        assert value(m, "ablate_inference_batches_total") == len(model.batches)
        assert value(m, "ablate_inference_batch_size_count") == len(model.batches)
        assert value(m, "ablate_inference_queue_seconds_count") == len(xs)
        assert value(m, "ablate_inference_queue_depth") == 0
        await b.stop()
    asyncio.run(main())


def test_batches_hold_whole_requests_up_to_max_batch() -> None:
    async def main() -> None:
        model = Model(seconds=0.01)
        b, _ = await started(model, max_batch=8, max_wait_ms=5)
        await asyncio.gather(*(b.infer(images(3, i)) for i in range(12)),
                             b.infer(images(20, 99)))  # bigger than max_batch: runs alone
        assert all(s % 3 == 0 and s <= 8 for s in model.batches if s != 20)
        assert 20 in model.batches and sum(model.batches) == 56
        await b.stop()
    asyncio.run(main())


def test_batching_off_runs_each_request_alone() -> None:
    async def main() -> None:
        model = Model(seconds=0.005)
        b, _ = await started(model, enabled=False)
        await asyncio.gather(*(b.infer(images(2, i)) for i in range(10)))
        assert model.batches == [2] * 10
        await b.stop()
    asyncio.run(main())


def test_a_lone_request_does_not_wait_for_company() -> None:
    async def main() -> None:
        model = Model()
        b, _ = await started(model, max_wait_ms=1000)
        for _ in range(3):
            t0 = time.perf_counter()
            await b.infer(images(1, 0))
            # max_wait is 1 s; a lone request must not sit it out (0.3 s: room for a
            # loaded CI machine's scheduling noise, well short of the wait).
            assert time.perf_counter() - t0 < 0.3
        await b.stop()
    asyncio.run(main())


def test_under_concurrency_a_batch_is_held_open_to_fill() -> None:
    async def main() -> None:
        model = Model()
        b, _ = await started(model, max_batch=64, max_wait_ms=400)
        await asyncio.gather(b.infer(images(1, 0)), b.infer(images(1, 1)))  # concurrent now
        model.batches.clear()

        async def trickle(i: int) -> np.ndarray:
            await asyncio.sleep(0.01 * i)  # one every 10 ms, well inside the 400 ms wait
            return await b.infer(images(1, i))

        await asyncio.gather(*(trickle(i) for i in range(10)))
        # Without holding the batch open each would run alone (the model is instant).
        assert len(model.batches) <= 3 and sum(model.batches) == 10
        await b.stop()
    asyncio.run(main())


def test_a_full_queue_refuses_with_503_and_retry_after() -> None:
    async def main() -> None:
        model = Model()
        b, m = await started(model, max_queue=4, max_batch=4)
        waiting = asyncio.create_task(b.infer(images(4, 1)))
        await asyncio.sleep(0)  # it queues its 4 images; the worker has not run yet
        with pytest.raises(ApiError) as e:
            await b.infer(images(1, 2))
        assert e.value.status == 503 and e.value.headers == {"Retry-After": "1"}
        assert value(m, "ablate_inference_rejected_total") == 1
        await waiting
        await b.infer(images(4, 3))  # drained: room again
        await b.stop()
    asyncio.run(main())


def test_requests_whose_client_left_are_skipped() -> None:
    async def main() -> None:
        model = Model(seconds=0.1)
        b, m = await started(model)
        busy = asyncio.create_task(b.infer(images(1, 0)))
        await asyncio.sleep(0.02)
        gone = asyncio.create_task(b.infer(images(5, 1)))
        await asyncio.sleep(0)
        gone.cancel()
        await busy
        await b.infer(images(2, 2))
        assert 5 not in model.batches and 7 not in model.batches
        assert value(m, "ablate_inference_queue_depth") == 0
        await b.stop()
    asyncio.run(main())


def test_a_failing_forward_pass_fails_its_requests_only(caplog: pytest.LogCaptureFixture
                                                         ) -> None:
    async def main() -> None:
        model = Model(fail=True)
        b, _ = await started(model)
        with pytest.raises(ApiError) as e:
            await b.infer(images(1, 0))
        assert (e.value.status, e.value.message) == (500, "internal error")
        assert "forward pass failed" in caplog.text and "boom" in caplog.text
        model.fail = False
        np.testing.assert_array_equal(await b.infer(images(1, 3)), images(1, 3)[:, :10])
        await b.stop()
    asyncio.run(main())


def test_not_started_is_503() -> None:
    async def main() -> None:
        b = Batcher(Model(), BatchConfig(), Metrics())
        with pytest.raises(ApiError) as e:
            await b.infer(images(1, 0))
        assert e.value.status == 503
    asyncio.run(main())


def within(seconds: float, awaitable: "asyncio.Future[np.ndarray] | asyncio.Task[np.ndarray]"
           ) -> "asyncio.Future[np.ndarray]":
    """The awaitable, or a test failure if it hangs (the old worker died silently)."""
    return asyncio.ensure_future(asyncio.wait_for(awaitable, seconds))


def test_a_worker_that_breaks_fails_its_requests_logs_and_restarts(
        caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        model = Model(garbage=1)  # the first batch breaks the worker's loop itself
        b, _ = await started(model, max_batch=1)
        # One image per batch: the first request's batch breaks, the other two are
        # still queued; all three fail, none hangs.
        tasks = [asyncio.create_task(b.infer(images(1, i))) for i in range(3)]
        for task in tasks:
            with pytest.raises(ApiError) as e:
                await within(5, task)
            assert (e.value.status, e.value.message) == (500, "internal error")
        assert model.batches == [1]
        assert "batcher worker failed" in caplog.text and "restarting" in caplog.text
        assert "the model answered NoneType" in caplog.text  # the traceback is logged
        assert b.alive and b.running
        np.testing.assert_array_equal(await within(5, b.infer(images(2, 7))),
                                      images(2, 7)[:, :10])
        await b.stop()
    asyncio.run(main())


def test_a_worker_that_keeps_breaking_is_given_up_and_liveness_turns_false(
        caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        model = Model(garbage=1000)
        b, _ = await started(model)
        for _ in range(MAX_RESTARTS + 1):
            with pytest.raises(ApiError) as e:
                await within(5, b.infer(images(1, 0)))
            assert e.value.status == 500
        assert not b.alive and not b.running
        assert "giving up" in caplog.text
        with pytest.raises(ApiError) as e:
            await b.infer(images(1, 0))
        assert e.value.status == 503 and "restart" in e.value.message
        await b.stop()
    asyncio.run(main())


def test_a_request_waits_at_most_its_timeout() -> None:
    """Batching off, each forward pass 0.3 s on the event loop, requests time out after
    0.45 s: the first two are answered; the others give up with 503 and are then
    skipped by the worker, not computed for nobody."""
    async def main() -> None:
        model = Model(seconds=0.3)
        b, m = await started(model, enabled=False, timeout_s=0.45)
        tasks = [asyncio.create_task(b.infer(images(1, i))) for i in range(5)]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(results[0], np.ndarray)
        late = results[-1]
        assert isinstance(late, ApiError) and late.status == 503, results
        assert late.headers == {"Retry-After": "1"} and "timed out" in late.message
        assert len(model.batches) < 5
        await b.infer(images(1, 9))  # still serving
        assert value(m, "ablate_inference_queue_depth") == 0
        await b.stop()
    asyncio.run(main())


def test_a_request_larger_than_the_queue_is_413_not_an_eternal_503() -> None:
    async def main() -> None:
        b, m = await started(Model(), max_queue=4, max_batch=4)
        with pytest.raises(ApiError) as e:
            await b.infer(images(5, 0))
        assert e.value.status == 413 and "at most 4" in e.value.message
        assert value(m, "ablate_inference_rejected_total") == 0  # not an overload
        await b.stop()
    asyncio.run(main())
