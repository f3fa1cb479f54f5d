"""Micro-batching: concurrent requests share forward passes.

Requests put their images on a bounded queue and wait. One worker takes what is
waiting (whole requests, up to `max_batch` images), runs one forward pass, and hands
each request its rows. While requests arrive concurrently, the worker may hold a
batch open for up to `max_wait_ms` after its oldest request arrived, to fill it; a
lone request never waits. A full queue answers 503 with Retry-After instead of
growing. With batching off, the same worker runs each request alone: the baseline.

The forward pass runs on the event loop itself, not in a thread: a batch of 64 takes
under a millisecond here, and a thread costs more than it saves. Each torch op drops
and re-takes the GIL, and while the loop is busy parsing requests every re-take can
wait out the interpreter's 5 ms switch interval; measured at concurrency 64, that
convoy cut throughput from ~6,000 to ~800 requests/s.
"""

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from serve.config import BatchConfig
from serve.errors import ApiError
from serve.metrics import Metrics

RETRY_AFTER_S = 1


@dataclass
class _Pending:
    x: np.ndarray  # (n, 784) float32
    future: "asyncio.Future[np.ndarray]"
    enqueued: float  # time.perf_counter()


class Batcher:
    """`await infer(x)`: x (n, 784) float32 -> probabilities (n, 10) float32."""

    def __init__(self, predict: Callable[[np.ndarray], np.ndarray], config: BatchConfig,
                 metrics: Metrics) -> None:
        self.predict, self.config, self.metrics = predict, config, metrics
        self._items: deque[_Pending] = deque()
        self._waiting = 0  # images queued, not yet taken by the worker
        self._arrived: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._concurrent = False  # the last batch held several requests, or left some

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        self._arrived = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while self._items:
            item = self._items.popleft()
            if not item.future.done():
                item.future.set_exception(ApiError(503, "the server is shutting down"))
        self._waiting = 0

    async def infer(self, x: np.ndarray) -> np.ndarray:
        if self._arrived is None or not self.running:
            raise ApiError(503, "the model is not ready yet; retry shortly",
                           {"Retry-After": str(RETRY_AFTER_S)})
        n = len(x)
        if self._waiting + n > self.config.max_queue:
            self.metrics.rejected.inc()
            raise ApiError(503, "the server is busy: too many images are waiting; retry "
                           "shortly", {"Retry-After": str(RETRY_AFTER_S)})
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._items.append(_Pending(x, future, time.perf_counter()))
        self._waiting += n
        self.metrics.queue_depth.set(self._waiting)
        self._arrived.set()
        return await future

    async def _run(self) -> None:
        assert self._arrived is not None
        while True:
            while not self._items:
                self._arrived.clear()
                await self._arrived.wait()
            batch = self._take([])
            if not batch:  # every waiting client went away
                continue
            if self.config.enabled and self._concurrent:
                await self._fill(batch)
            self._concurrent = len(batch) > 1 or bool(self._items)
            self._execute(batch)
            await asyncio.sleep(0)  # let the answered requests respond before the next batch

    def _take(self, batch: list[_Pending]) -> list[_Pending]:
        """Move whole waiting requests into `batch` while they fit in max_batch (the
        first always goes); with batching off, only one request per batch."""
        limit = self.config.max_batch if self.config.enabled else 0
        size = sum(len(p.x) for p in batch)
        while self._items:
            item = self._items[0]
            if item.future.done():  # its client went away
                self._items.popleft()
                self._waiting -= len(item.x)
                continue
            if batch and size + len(item.x) > limit:
                break
            self._items.popleft()
            self._waiting -= len(item.x)
            batch.append(item)
            size += len(item.x)
        self.metrics.queue_depth.set(self._waiting)
        return batch

    async def _fill(self, batch: list[_Pending]) -> None:
        """Wait for more requests until the batch is full or its oldest request has
        waited max_wait_ms."""
        assert self._arrived is not None
        deadline = batch[0].enqueued + self.config.max_wait_ms / 1000.0
        while sum(len(p.x) for p in batch) < self.config.max_batch:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            if not self._items:
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                except TimeoutError:
                    return
            before = len(batch)
            self._take(batch)
            if len(batch) == before and self._items:  # the next request does not fit
                return

    def _execute(self, batch: list[_Pending]) -> None:
        live = [p for p in batch if not p.future.done()]
        if not live:
            return
        start = time.perf_counter()
        x = live[0].x if len(live) == 1 else np.concatenate([p.x for p in live])  # (B, 784)
        try:
            probs = self.predict(x)  # (B, 10)
        except Exception:
            for p in live:
                if not p.future.done():
                    p.future.set_exception(ApiError(500, "inference failed"))
            return
        m = self.metrics
        m.batches.inc()
        m.items.inc(len(x))
        m.batch_size.observe(len(x))
        m.inference_seconds.observe(time.perf_counter() - start)
        offset = 0
        for p in live:
            m.queue_seconds.observe(start - p.enqueued)
            rows = probs[offset:offset + len(p.x)]
            offset += len(p.x)
            if not p.future.done():
                p.future.set_result(rows)
