"""A bounded pool for decoding uploaded images: the service's memory and CPU hog.

Each of `max_decodes` slots owns a worker process (`serve.decode_worker`) and a thread
that talks to it. `await pool.prepare(data)` takes a free slot or, when all are busy,
answers 503 with Retry-After at once, before anything is decoded: waiting would only
hold the request's body longer. The number of slots bounds the memory images take
(one decode holds the decoder's full-size image, up to 8 bytes a pixel at the pixel
ceiling, see `serve.preprocess`), and the deadline bounds their CPU time: a decode
still running `decode_timeout_s` after it was handed over is stopped by killing its
process, answered 413 and logged, and the slot starts a fresh process before it
takes more work. A slot counts as busy until its thread is done, even if the request
waiting for it is gone.
"""

import asyncio
import contextlib
import json
import logging
import os
import select
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from typing import ParamSpec, TypeVar

import numpy as np

from serve import decode_worker
from serve.api_error import ApiError, busy
from serve.config import Limits
from serve.metrics import Metrics

__all__ = ["WORKER_START_S", "DecodePool", "DecodeTimeout", "DecodeWorker"]

P = ParamSpec("P")
T = TypeVar("T")
log = logging.getLogger("serve")

WORKER_START_S = 60.0  # a fresh worker imports NumPy and Pillow (~0.2 s here)
_INPUT_BYTES = 784 * 4


class _WorkerGone(Exception):
    pass


class DecodeTimeout(ApiError):
    """413: the decode ran past its deadline and was stopped."""


class DecodeWorker:
    """One worker process, driven from one thread at a time (its slot's)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()  # start/stop from the loop vs the slot's thread
        self._closed = False  # closed for good: no more starts

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def start(self) -> None:
        """A running worker, ready for work (started if there is none)."""
        with self._lock:
            if self._closed:
                raise busy("the server is shutting down")
            if self._proc is not None and self._proc.poll() is None:
                return
            proc = subprocess.Popen(
                [sys.executable, "-m", "serve.decode_worker", json.dumps(asdict(self.limits))],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0, close_fds=True)
            self._proc = proc
        try:
            if self._read(proc, 1, time.monotonic() + WORKER_START_S) != decode_worker.READY:
                raise _WorkerGone
        except (_WorkerGone, TimeoutError):
            self.stop()
            raise RuntimeError("the image decoder's worker process did not start") from None

    def prepare(self, data: bytes, timeout_s: float) -> np.ndarray:
        """Uploaded PNG/JPEG bytes -> (784,) float32 model input, or the worker's
        ApiError; the decode is stopped after `timeout_s` (413)."""
        self.start()
        proc = self._proc
        assert proc is not None and proc.stdin is not None
        deadline = time.monotonic() + timeout_s
        try:
            _write_all(proc.stdin.fileno(), len(data).to_bytes(8, "big"))
            _write_all(proc.stdin.fileno(), data)
            kind = self._read(proc, 1, deadline)
            if kind == decode_worker.OK:
                return np.frombuffer(self._read(proc, _INPUT_BYTES, deadline), dtype="<f4").copy()
            if kind == decode_worker.REFUSED:
                status, n = struct.unpack(">HI", self._read(proc, 6, deadline))
                raise ApiError(status, self._read(proc, n, deadline).decode())
            if kind == decode_worker.FAILED:
                (n,) = struct.unpack(">I", self._read(proc, 4, deadline))
                name = self._read(proc, n, deadline).decode()
                raise RuntimeError(f"the image decoder failed: {name}")
            raise _WorkerGone
        except TimeoutError:
            self.stop()
            log.warning("an image decode ran past %g s (%d bytes uploaded); its worker was "
                        "stopped (ABLATE_SERVE_DECODE_TIMEOUT_S)", timeout_s, len(data))
            self._restart_quietly()
            raise DecodeTimeout(413, f"image too costly to decode: it took over {timeout_s:g} "
                                "s (send a smaller or simpler PNG or JPEG)") from None
        except (_WorkerGone, BrokenPipeError):
            if self._closed:
                raise busy("the server is shutting down") from None
            code = proc.poll()
            self.stop()
            log.error("the image decoder's worker process ended (exit status %s); starting "
                      "a new one", code)
            self._restart_quietly()
            raise busy("the image decoder restarted; retry shortly") from None

    def _restart_quietly(self) -> None:
        """Start the next worker now, so the slot's next request does not wait for it;
        if that fails, the next request tries again (and fails with a 500)."""
        with contextlib.suppress(RuntimeError, OSError, ApiError):
            self.start()

    @staticmethod
    def _read(proc: subprocess.Popen[bytes], n: int, deadline: float) -> bytes:
        """Exactly n bytes of the worker's answer before `deadline` (TimeoutError), or
        _WorkerGone at the end of its output."""
        assert proc.stdout is not None
        fd, parts, left = proc.stdout.fileno(), [], n
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while left:
            wait_ms = (deadline - time.monotonic()) * 1000
            if wait_ms <= 0 or not poller.poll(wait_ms):
                raise TimeoutError
            chunk = os.read(fd, left)
            if not chunk:
                raise _WorkerGone
            parts.append(chunk)
            left -= len(chunk)
        return b"".join(parts)

    def stop(self, for_good: bool = False) -> None:
        """Kill the worker (a decode in progress is abandoned) and reap it; `for_good`:
        start no other."""
        with self._lock:
            self._closed = self._closed or for_good
            proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class DecodePool:
    def __init__(self, limits: Limits, metrics: Metrics) -> None:
        self.size, self.metrics = limits.max_decodes, metrics
        self.timeout_s = limits.decode_timeout_s
        self.workers = [DecodeWorker(limits) for _ in range(self.size)]
        self._free = list(self.workers)  # only touched on the event loop's thread
        self._executor = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix="decode")

    @property
    def busy(self) -> int:
        return self.size - len(self._free)

    async def start(self) -> None:
        """Start every worker process (the first image then waits for none)."""
        await asyncio.gather(*(asyncio.to_thread(w.start) for w in self.workers))

    def check(self) -> None:
        """A 503 now if no slot is free: an image request is refused before its upload
        is read, not after (it would be refused then too, unless a slot frees up)."""
        if not self._free:
            self.metrics.decodes_rejected.inc()
            raise busy("the server is busy decoding other images; retry shortly")

    async def prepare(self, data: bytes) -> np.ndarray:
        """An uploaded PNG/JPEG -> (784,) float32 model input, prepared by a worker
        process within the deadline; a 503 if no slot is free."""
        timeout_s = self.timeout_s
        try:
            return await self._on_slot(lambda worker: worker.prepare(data, timeout_s))
        except DecodeTimeout:
            self.metrics.decode_timeouts.inc()
            raise

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args, **kwargs)` on a free slot's thread, holding the slot; or a 503."""
        return await self._on_slot(lambda _: fn(*args, **kwargs))

    async def _on_slot(self, call: Callable[[DecodeWorker], T]) -> T:
        self.check()
        loop = asyncio.get_running_loop()
        worker = self._free.pop()
        try:
            job = self._executor.submit(call, worker)
        except RuntimeError:  # shut down
            self._free.append(worker)
            raise busy("the server is shutting down") from None
        self.metrics.decodes.set(self.busy)

        def finished(_: Future[T]) -> None:  # on the slot's thread
            with contextlib.suppress(RuntimeError):  # the loop closed: nothing to count
                loop.call_soon_threadsafe(self._release, worker)

        job.add_done_callback(finished)
        return await asyncio.wrap_future(job)

    def _release(self, worker: DecodeWorker) -> None:
        self._free.append(worker)
        self.metrics.decodes.set(self.busy)

    def close(self) -> None:
        """Stop taking work and stop the worker processes (a decode still running is
        abandoned: its request has been answered or given up by now)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        for worker in self.workers:
            worker.stop(for_good=True)
