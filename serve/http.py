"""HTTP/1.1 connection limits below the app: what uvicorn 0.54 does not enforce itself.

uvicorn bounds idle keep-alive connections (`timeout_keep_alive`), connections and
requests in flight (`limit_concurrency`, 503 beyond) and the graceful shutdown
(`timeout_graceful_shutdown`); `ablate serve` sets all three. Its httptools protocol
(the fast one, used here) has no limit on the size of request headers (h11 has one,
`h11_max_incomplete_event_size`, but is several times slower) and neither protocol
times out a client that sends its headers or body slowly (slowloris), or opens a
connection and sends nothing. `guarded_protocol` adds those to uvicorn's httptools
protocol:

- request line + headers over `max_header_bytes`: 431, connection closed;
- headers not complete `header_timeout_s` after the connection opened or the
  request's first byte: 408, connection closed;
- body not complete `body_timeout_s` after the headers: the app answers 408 itself
  (`serve.middleware.RequestBody`, so the answer is counted and logged); if the app
  never reads the body, the connection is closed a second later.
"""

import asyncio
from collections.abc import Callable
from typing import Any, ClassVar

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from serve.config import HttpLimits

_BODY_GRACE_S = 1.0  # the app's own 408 goes first; this only catches unread bodies


class _HeadersTooLarge(Exception):
    pass


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    limits: ClassVar[HttpLimits]

    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._header_bytes = 0
        self._headers_too_large = False
        self._deadline: asyncio.TimerHandle | None = None

    # A connection must start its request in time, as each request must finish its
    # headers and its body in time; between requests uvicorn's keep-alive timer rules.
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.limits.header_timeout_s, self._headers_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._arm(self.limits.header_timeout_s, self._headers_late)

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._arm(self.limits.body_timeout_s + _BODY_GRACE_S, self._body_late)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _count(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > self.limits.max_header_bytes:
            self._headers_too_large = True
            raise _HeadersTooLarge  # httptools stops parsing; data_received answers

    def send_400_response(self, msg: str) -> None:
        if self._headers_too_large:
            self._refuse(431, "request headers too large: at most "
                         f"{self.limits.max_header_bytes:,} bytes")
        else:
            super().send_400_response(msg)

    def _headers_late(self) -> None:
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False  # a pipelined request: close after this answer
        else:
            self._refuse(408, "request headers not received in time")

    def _body_late(self) -> None:
        if self.cycle is not None and not self.cycle.response_started:
            self.cycle.disconnected = True  # drop whatever the app still sends
            self._refuse(408, "request body not received in time")
        elif not self.transport.is_closing():
            self.transport.close()

    def _refuse(self, status: int, message: str) -> None:
        """Answer `{"error": message}` and close, without the app (which has not
        seen this request, or gave up on it)."""
        self._disarm()
        if self.transport.is_closing():
            return
        body = b'{"error":"' + message.encode("ascii") + b'"}'
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [b"content-type: application/json\r\n",
                 b"content-length: ", str(len(body)).encode("ascii"), b"\r\n",
                 b"connection: close\r\n", b"\r\n"]
        self.transport.write(b"".join(head) + body)
        self.transport.close()

    def _arm(self, seconds: float, callback: Callable[[], None]) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None


def guarded_protocol(limits: HttpLimits) -> type[GuardedHttpToolsProtocol]:
    """The protocol class to hand uvicorn (`http=`), enforcing `limits`."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {"limits": limits})
