"""`ApiError`, the exception handlers raise for an error answer, and its common kinds.

Kept apart from `serve.errors` (which needs Litestar) so that the image decoder's
worker process (`serve.decode_worker`) can raise them without importing the web stack.
"""

from collections.abc import Mapping

__all__ = ["RETRY_AFTER_S", "ApiError", "bad_request", "busy", "too_large"]


class ApiError(Exception):
    """An error answer: a 4xx status (503 for overload), a message and extra headers."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None
                 ) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, dict(headers or {})


RETRY_AFTER_S = 1  # seconds a client told 503 waits before retrying


def busy(message: str) -> ApiError:
    """503 with Retry-After: an overload the client should retry shortly."""
    return ApiError(503, message, {"Retry-After": str(RETRY_AFTER_S)})


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def too_large(message: str) -> ApiError:
    return ApiError(413, message)
