"""The one exception the HTTP layer turns into an error response: `{"error": message}`.

Messages are written by this package only; they never contain any part of the
request (no values, names, ids or paths a client sent), so nothing a client sends is
reflected back, logged or counted.
"""


class ApiError(Exception):
    """An error answer: a 4xx status (503 for overload), a message and extra headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None
                 ) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def too_large(message: str) -> ApiError:
    return ApiError(413, message)
