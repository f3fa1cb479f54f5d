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

The worker is supervised. A forward pass that raises fails its own batch (500,
"internal error", logged with its traceback). Anything else that breaks the worker's
loop (a bug, or a model answering something that is not (B, 10) probabilities) is
logged, fails every request waiting (500, "internal error"), and the worker is
restarted; after MAX_RESTARTS restarts within RESTART_WINDOW_S it is given up and
`alive` turns false (liveness answers 503), so an orchestrator restarts the process.
No request waits longer than `timeout_s`.
"""

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ablate.engine import CLASSES
from serve.config import BatchConfig
from serve.errors import ApiError, busy
from serve.metrics import Metrics

__all__ = ["MAX_RESTARTS", "RESTART_WINDOW_S", "Batcher"]

MAX_RESTARTS = 3  # within RESTART_WINDOW_S; one more failure gives the worker up
RESTART_WINDOW_S = 60.0
log = logging.getLogger("serve")


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
        self._taken: list[_Pending] = []  # the batch the worker is working on
        self._arrived: asyncio.Event | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._given_up = False
        self._concurrent = False  # the last batch held several requests, or left some

    @property
    def alive(self) -> bool:
        """True from `start` to `stop` unless the worker was given up."""
        return self._supervisor is not None and not self._supervisor.done()

    @property
    def running(self) -> bool:
        """True while the worker runs: requests are being answered."""
        return self.alive and self._worker is not None and not self._worker.done()

    async def start(self) -> None:
        self._arrived = asyncio.Event()
        self._given_up = False
        self._supervisor = asyncio.create_task(self._supervise(), name="batcher supervisor")
        await asyncio.sleep(0)  # the supervisor starts the worker

    async def stop(self) -> None:
        tasks = [t for t in (self._supervisor, self._worker) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # failures were logged
        self._fail_waiting(ApiError(503, "the server is shutting down"))

    async def infer(self, x: np.ndarray) -> np.ndarray:
        if self._given_up:
            raise ApiError(503, "the model worker stopped after repeated failures; this "
                           "server needs a restart")
        if self._arrived is None or not self.running:
            raise busy("the model is not ready yet; retry shortly")
        n = len(x)
        if n > self.config.max_queue:
            raise ApiError(413, f"too many images for this server's queue: at most "
                           f"{self.config.max_queue} per request; split the batch")
        if self._waiting + n > self.config.max_queue:
            self.metrics.rejected.inc()
            raise busy("the server is busy: too many images are waiting; retry shortly")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._items.append(_Pending(x, future, time.perf_counter()))
        self._waiting += n
        self.metrics.queue_depth.set(self._waiting)
        self._arrived.set()
        # The future itself expires (the worker then skips it), and it is awaited
        # directly, so a request cancelled by its client is skipped at once too.
        timer = loop.call_later(self.config.timeout_s, self._expire, future)
        try:
            return await future
        finally:
            timer.cancel()

    def _expire(self, future: "asyncio.Future[np.ndarray]") -> None:
        if not future.done():
            self.metrics.timeouts.inc()
            future.set_exception(busy("timed out waiting for the model; retry shortly"))

    async def _supervise(self) -> None:
        failures: deque[float] = deque()
        while True:
            self._worker = asyncio.create_task(self._run(), name="batcher")
            try:
                await self._worker
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("batcher worker failed; failing the %d waiting requests with "
                              "500 and restarting it", len(self._taken) + len(self._items))
            self._fail_waiting(ApiError(500, "internal error"))
            self.metrics.worker_restarts.inc()
            now = time.monotonic()
            failures.append(now)
            while failures and failures[0] < now - RESTART_WINDOW_S:
                failures.popleft()
            if len(failures) > MAX_RESTARTS:
                self._given_up = True
                log.error("batcher worker failed %d times in %.0f s; giving up: liveness "
                          "now answers 503, restart the server", len(failures),
                          RESTART_WINDOW_S)
                return

    def _fail_waiting(self, error: ApiError) -> None:
        """Fail the batch being worked on and everything queued."""
        for item in (*self._taken, *self._items):
            if not item.future.done():
                item.future.set_exception(error)
        self._taken = []
        self._items.clear()
        self._waiting = 0
        self.metrics.queue_depth.set(0)

    async def _run(self) -> None:
        assert self._arrived is not None
        while True:
            while not self._items:
                self._arrived.clear()
                await self._arrived.wait()
            self._taken = self._take([])
            if not self._taken:  # every waiting client went away
                continue
            if self.config.enabled and self._concurrent:
                await self._fill(self._taken)
            self._concurrent = len(self._taken) > 1 or bool(self._items)
            self._execute(self._taken)
            self._taken = []
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
            log.exception("forward pass failed for a batch of %d images", len(x))
            for p in live:
                if not p.future.done():
                    p.future.set_exception(ApiError(500, "internal error"))
            return
        if not isinstance(probs, np.ndarray) or probs.shape != (len(x), CLASSES):
            raise RuntimeError(f"the model answered {type(probs).__name__} "
                               f"{getattr(probs, 'shape', '')}, not ({len(x)}, {CLASSES}) "
                               "probabilities")
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
