"""Error answers: the `ApiError` handlers raise, and the exception handlers that turn
every exception into `{"error": message}`.

Messages are written by this package only; they never contain any part of the
request (no values, names, ids or paths a client sent), so nothing a client sends is
reflected back, logged or counted. A 5xx never says more than "internal error"; the
log line names the route template and the exception type, not the request.
"""

import logging
from collections.abc import Mapping
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from litestar.types import ExceptionHandlersMap, Scope

from serve.api_error import RETRY_AFTER_S, ApiError, bad_request, busy, too_large
from serve.metrics import Metrics

__all__ = ["CLIENT_CLOSED_REQUEST", "METHODS", "RETRY_AFTER_S", "AnyRequest", "ApiError",
           "ClientGone", "Error", "bad_request", "busy", "endpoint", "error_response",
           "exception_handlers", "method_label", "too_large"]

log = logging.getLogger("serve")

AnyRequest = Request[Any, Any, State]  # the service uses neither users nor auth

METHODS = frozenset({"GET", "POST", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"})
CLIENT_CLOSED_REQUEST = 499
_STATUS_WORDS = {400: "bad request", 404: "not found", 405: "method not allowed",
                 413: "request body too large", 415: "unsupported media type",
                 500: "internal error"}


class Error(msgspec.Struct, frozen=True):
    """Every error body, as the Open Inference Protocol specifies: `{"error": "..."}`."""

    error: str


class ClientGone(Exception):
    """The client closed the connection before its request arrived: nobody to answer.

    Counted as 499 (nginx's "client closed request") so that hanging up cannot inflate
    the 5xx rate, and logged at debug level only."""


def endpoint(scope: Scope) -> str:
    """The route template that matched (never the raw path, which the client chose)."""
    return str(scope.get("path_template") or "unmatched")


def method_label(scope: Scope) -> str:
    method = str(scope.get("method", "OTHER"))
    return method if method in METHODS else "OTHER"


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None
                   ) -> Response[Error]:
    return Response(Error(message), status_code=status, headers=dict(headers or {}))


def _api_error(_: AnyRequest, exc: ApiError) -> Response[Error]:
    return error_response(exc.status, exc.message, exc.headers)


def exception_handlers(metrics: Metrics) -> ExceptionHandlersMap:
    """The app's exception handlers; `metrics` counts the requests no route matched
    (the metrics middleware runs only for matched routes)."""

    def http_error(request: AnyRequest, exc: HTTPException
                   ) -> Response[Error]:
        status = exc.status_code
        if "path_template" not in request.scope:  # routing failed: the middleware never ran
            metrics.observe_request("unmatched", method_label(request.scope), status, None)
        if status >= 500:
            log.error("internal error answering %s: %s", endpoint(request.scope),
                      type(exc).__name__)
        if status == 413:
            limit = request.app.request_max_body_size
            return error_response(413, f"request body too large: at most {limit:,} bytes")
        if status == 405:
            return error_response(405, "method not allowed on this path", exc.headers)
        return error_response(status, _STATUS_WORDS.get(status, "request failed"))

    return {ApiError: _api_error, ClientGone: _client_gone, HTTPException: http_error,
            Exception: _internal_error}


def _client_gone(request: AnyRequest, _: ClientGone) -> Response[Error]:
    log.debug("client closed the connection during %s", endpoint(request.scope))
    return error_response(CLIENT_CLOSED_REQUEST, "client closed the request")


def _internal_error(request: AnyRequest, exc: Exception
                    ) -> Response[Error]:
    log.error("internal error answering %s: %s", endpoint(request.scope), type(exc).__name__)
    return error_response(500, "internal error")
