"""The budget of request-body bytes held in memory at once, across all connections.

One request's body is bounded by `max_body_bytes`; without a bound on their sum, 40
connections each sending 8 MiB held 729 MiB. `serve.middleware.RequestBody` takes each
request's bytes from this budget as they are announced or arrive and gives them back
when the request is answered. Parsing holds up to ~3 copies of a body (Litestar's
chunks and their join; base64 text and its decoding), so `max_held_body_bytes` of 32
MiB bounds what bodies take to ~100 MiB.
"""

from serve.metrics import Metrics

__all__ = ["BodyBudget"]


class BodyBudget:
    """Used from the event loop's thread only."""

    def __init__(self, limit: int, metrics: Metrics) -> None:
        self.limit, self.metrics = limit, metrics
        self.held = 0

    def take(self, n: int) -> bool:
        """Take n bytes if they fit (False, and counted, if not)."""
        if self.held + n > self.limit:
            self.metrics.bodies_rejected.inc()
            return False
        self.held += n
        self.metrics.held_body_bytes.set(self.held)
        return True

    def give(self, n: int) -> None:
        self.held -= n
        self.metrics.held_body_bytes.set(self.held)
