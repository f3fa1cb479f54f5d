"""A bounded pool for decoding uploaded images: the service's memory hog.

One decode holds the decoder's full-size image (up to 8 bytes a pixel at the pixel
ceiling, see `serve.preprocess`), so the number running at once bounds the memory
images can take. `await pool.run(preprocess.prepare_image, data, limits)` takes one of
`size` worker threads or, when all are busy, answers 503 with Retry-After at once,
before anything is decoded: waiting would only hold the request's body longer. A
worker counts as busy until its thread finishes, even if the request waiting for it
is gone.
"""

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from serve.errors import busy
from serve.metrics import Metrics

P = ParamSpec("P")
T = TypeVar("T")


class DecodePool:
    def __init__(self, size: int, metrics: Metrics) -> None:
        self.size, self.metrics = size, metrics
        self._busy = 0  # only touched on the event loop's thread
        self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="decode")

    @property
    def busy(self) -> int:
        return self._busy

    def check(self) -> None:
        """A 503 now if no worker is free: an image request is refused before its upload
        is read, not after (it would be refused then too, unless a worker frees up)."""
        if self._busy >= self.size:
            self.metrics.decodes_rejected.inc()
            raise busy("the server is busy decoding other images; retry shortly")

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args, **kwargs)` on a free worker, or a 503 if there is none."""
        self.check()
        loop = asyncio.get_running_loop()
        job = self._executor.submit(fn, *args, **kwargs)
        self._busy += 1
        self.metrics.decodes.set(self._busy)

        def finished(_: Future[T]) -> None:  # on the worker's thread
            with contextlib.suppress(RuntimeError):  # the loop closed: nothing to count
                loop.call_soon_threadsafe(self._release)

        job.add_done_callback(finished)
        return await asyncio.wrap_future(job)

    def _release(self) -> None:
        self._busy -= 1
        self.metrics.decodes.set(self._busy)

    def close(self) -> None:
        """Stop taking work; decodes already running finish on their own."""
        self._executor.shutdown(wait=False, cancel_futures=True)
