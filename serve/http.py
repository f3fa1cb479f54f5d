"""HTTP/1.1 connection limits below the app: what uvicorn 0.54 does not enforce itself.

uvicorn bounds idle keep-alive connections (`timeout_keep_alive`) and the graceful
shutdown (`timeout_graceful_shutdown`); `ablate serve` sets both. Its httptools
protocol (the fast one, used here) has no limit on the size of request headers (h11
has one, but is several times slower), neither protocol times out a client that sends
its headers or body slowly (slowloris) or sends nothing, and its connection limit
(`limit_concurrency`) answers plain text, is not counted, and lets silent sockets lock
everyone out. `guarded_protocol` replaces all that:

- Request line + headers over `max_header_bytes`: 431. Bytes are counted as they
  arrive, from the first byte of a request (or the end of the previous one) to the end
  of its headers, so a header line left open and streamed in pieces is stopped at the
  limit: httptools itself keeps an unfinished header by appending each piece, which
  costs quadratic time and unbounded memory. (A pipelined request whose head starts
  in the same read as the previous request's body ends is counted from the next read
  on: at most one read, 256 KiB, is parsed uncounted.)
- Headers not complete `header_timeout_s` after the connection opened or the
  request's first byte: 408.
- Body not complete `body_timeout_s` after the headers: the app answers 408 itself
  (`serve.middleware.RequestBody`); if the app never reads the body, 408 from here.
- At most `max_connections` open connections. A new one beyond that closes another
  with no request in the app: first one kept alive between requests (its client
  reopens it at no cost), then the one longest silent since it opened or in the
  middle of its headers (if it has had FRESH_GRACE_S to send its request); else the
  one whose request body has stalled longest (for at least `stalled_body_s`). So
  silent sockets cannot lock anyone out: each newcomer pushes the oldest one out.
  Young connections may go beyond the limit by a quarter of it (the overflow; beyond
  that the oldest goes, however young). When the limit is full of busy connections, a
  newcomer's request is still served if it has no body (it holds nothing: health
  checks get through), and gets 503 if it has one.
- A malformed request (the parser's error): 400.
- On shutdown (SIGTERM, Ctrl-C), a connection in the middle of its headers gets 503;
  a request in the app has `shutdown_timeout_s` to be answered, then gets 503.

Every refusal is `{"error": ...}` JSON with the security headers (and Retry-After on a
503), closes the connection, and is counted in /metrics: under the endpoint label
`connection` in the request counters (the app never saw the request, or its answer is
dropped: `ANSWERED_BELOW` tells the metrics middleware not to count it again) and by
reason in `ablate_http_refusals_total`. At most one log line per LOG_EVERY_S sums them
up. After a refusal the connection lingers (half-closed, discarding what the client
still sends) for up to LINGER_S, so that a client still uploading reads the answer
instead of a reset.
"""

import asyncio
import logging
import math
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Any, ClassVar

import httptools
import msgspec
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from serve.api_error import RETRY_AFTER_S
from serve.config import HttpLimits
from serve.errors import METHODS, Error
from serve.metrics import Metrics
from serve.middleware import ANSWERED_BELOW, SECURITY_HEADERS

__all__ = ["ANSWERED_BELOW", "CONNECTION", "LINGER_S", "Connections",
           "GuardedHttpToolsProtocol", "guarded_protocol", "shutdown_grace_s"]

log = logging.getLogger("serve")

_BODY_GRACE_S = 1.0  # the app's own 408 goes first; this only catches unread bodies
LINGER_S = 2.0  # after a refusal, how long a client still sending may go on being ignored
LOG_EVERY_S = 10.0
FRESH_GRACE_S = 1.0  # a new connection's time to send its request before it may be closed
CONNECTION = "connection"  # the endpoint label of requests answered below the app


def shutdown_grace_s(limits: HttpLimits, decode_timeout_s: float) -> float:
    """uvicorn's graceful-shutdown timeout: after the requests' own `shutdown_timeout_s`
    (then they get 503 from here), time for the refusals to linger and for handlers
    still in a decode to return, so that uvicorn never has to cancel one."""
    return limits.shutdown_timeout_s + max(LINGER_S, decode_timeout_s) + 1.0


class _Stop(Exception):
    """Raised in a parser callback to stop parsing the rest of the data fed."""


class Connections:
    """The open connections of one server and the order in which they may be closed to
    make room; counts and logs the refusals."""

    def __init__(self, limit: int, metrics: Metrics | None) -> None:
        self.limit, self.metrics = limit, metrics
        self.overflow = max(8, limit // 4)  # young connections allowed beyond the limit
        self.open: set[GuardedHttpToolsProtocol] = set()
        # Those with no request in the app, in the order they may be closed: refused
        # ones lingering; kept alive between requests (a client reopens one at no
        # cost); then new or in the middle of a head, by when they became so.
        self.closing: dict[GuardedHttpToolsProtocol, None] = {}
        self.kept_alive: OrderedDict[GuardedHttpToolsProtocol, None] = OrderedDict()
        self.fresh: OrderedDict[GuardedHttpToolsProtocol, None] = OrderedDict()
        self._unlogged: Counter[str] = Counter()
        self._logged_at = -math.inf

    def _forget(self, c: "GuardedHttpToolsProtocol") -> None:
        for tier in (self.closing, self.kept_alive, self.fresh):
            tier.pop(c, None)

    def opened(self, c: "GuardedHttpToolsProtocol") -> None:
        self.open.add(c)
        self.fresh[c] = None
        c.fresh_since = time.monotonic()

    def closed(self, c: "GuardedHttpToolsProtocol") -> None:
        self.open.discard(c)
        self._forget(c)

    def now_kept_alive(self, c: "GuardedHttpToolsProtocol") -> None:
        """Answered, waiting for the next request."""
        if c in self.open:
            self._forget(c)
            self.kept_alive[c] = None

    def now_receiving(self, c: "GuardedHttpToolsProtocol") -> None:
        """The next request's head is arriving on a kept-alive connection."""
        if c in self.kept_alive:
            del self.kept_alive[c]
            self.fresh[c] = None
            c.fresh_since = time.monotonic()

    def now_busy(self, c: "GuardedHttpToolsProtocol") -> None:
        self._forget(c)

    def now_closing(self, c: "GuardedHttpToolsProtocol") -> None:
        if c in self.open:
            self._forget(c)
            self.closing[c] = None

    def make_room(self, spare: "GuardedHttpToolsProtocol") -> None:
        """Close connections (not `spare`) until at most `limit` are open, or none can go."""
        while len(self.open) > self.limit:
            victim = self._victim(spare)
            if victim is None:
                return
            victim.evict()
            self.closed(victim)

    def _victim(self, spare: "GuardedHttpToolsProtocol") -> "GuardedHttpToolsProtocol | None":
        for tier in (self.closing, self.kept_alive):
            for c in tier:
                if c is not spare:
                    return c
        now = time.monotonic()
        # A connection opened (or gone back to a head) under FRESH_GRACE_S ago may not
        # have had the time to send its request: spared, unless the overflow is full.
        forced = len(self.open) > self.limit + self.overflow
        for c in self.fresh:
            if c is not spare:
                if forced or now - c.fresh_since >= FRESH_GRACE_S:
                    return c
                break  # the rest are younger still
        now = time.monotonic()
        stalled = [(c.last_data, c) for c in self.open
                   if c is not spare and c.body_stalled(now)]
        return min(stalled, key=lambda t: t[0])[1] if stalled else None

    def refused(self, reason: str, status: int | None, method: str) -> None:
        """Count a refusal (status None: a connection closed without an answer)."""
        if self.metrics is not None:
            if status is not None:
                self.metrics.observe_request(CONNECTION, method, status, None)
            self.metrics.refusals.labels(reason).inc()
        self._unlogged[reason] += 1
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY_S:
            since = ("" if math.isinf(self._logged_at)
                     else f" in the last {now - self._logged_at:.0f} s")
            log.warning("refused below the app%s: %s (see ablate_http_refusals_total)", since,
                        ", ".join(f"{n} {why}" for why, n in sorted(self._unlogged.items())))
            self._unlogged.clear()
            self._logged_at = now


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    limits: ClassVar[HttpLimits]
    registry: ClassVar[Connections]  # (uvicorn's own `connections` is a plain set)

    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._head_bytes = 0  # of the request head being received
        self._in_head = True  # between requests or inside a head: bytes count as head
        self._in_body = False  # headers complete, body not yet
        self._served = 0  # requests answered on this connection
        self._refusing = False  # answered from here: discarding until closed
        self.last_data = self.fresh_since = time.monotonic()
        self._deadline: asyncio.TimerHandle | None = None  # header or body timer
        self._shutdown_timer: asyncio.TimerHandle | None = None
        self._linger: asyncio.TimerHandle | None = None

    # A connection must start its request in time, as each request must finish its
    # headers and its body in time; between requests uvicorn's keep-alive timer rules.
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.registry.opened(self)
        self._arm(self.limits.header_timeout_s, self._headers_late)
        self.registry.make_room(spare=self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.registry.closed(self)
        self._disarm()
        for timer in (self._shutdown_timer, self._linger):
            if timer is not None:
                timer.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refusing:
            return  # lingering: the answer is sent, the rest is ignored
        self.last_data = time.monotonic()
        self._unset_keepalive_if_required()
        if self._in_head and self._served:
            self.registry.now_receiving(self)
        while data:
            if self._in_head:  # feed no more than the head may still take
                room = self.limits.max_header_bytes - self._head_bytes
                if room <= 0:
                    self._refuse(431, "request headers too large: at most "
                                 f"{self.limits.max_header_bytes:,} bytes", "headers_too_large")
                    return
                piece, data = data[:room], data[room:]
                self._head_bytes += len(piece)
            else:
                piece, data = data, b""
            self._feed(piece)
            if self._refusing or self.transport.is_closing():
                return

    def _feed(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # no protocol upgrades here: the request is answered as plain HTTP
        except httptools.HttpParserError:
            if not self._refusing:  # else a callback stopped the parser on purpose
                self._refuse(400, "malformed HTTP request", "bad_request")

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, "malformed HTTP request", "bad_request")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm(self.limits.header_timeout_s, self._headers_late)

    def on_headers_complete(self) -> None:
        self._in_head, self._in_body, self._head_bytes = False, True, 0
        self.registry.now_busy(self)
        pipelined = self.cycle is not None and not self.cycle.response_complete
        if not pipelined and self._over_limit():
            self.registry.make_room(spare=self)  # someone may have gone idle since
            if self._over_limit() and (self._has_body() or self._too_many_tasks()):
                method = self.parser.get_method().decode("ascii", "replace")
                self._refuse(503, "the server is at its connection limit; retry shortly",
                             "connection_limit", method=method, retry=True)
                raise _Stop
        self._arm(self.limits.body_timeout_s + _BODY_GRACE_S, self._body_late)
        super().on_headers_complete()

    def _over_limit(self) -> bool:
        return len(self.registry.open) > self.registry.limit or self._too_many_tasks()

    def _too_many_tasks(self) -> bool:
        """Handlers running: at most twice the limit (one per connection, and those of
        connections just closed, still finishing: their decodes and batches are
        bounded on their own)."""
        return len(self.tasks) >= 2 * self.registry.limit

    def _has_body(self) -> bool:
        """Whether the request announces a body (without one it holds nothing while it
        is answered, so it is served even beyond the limit: a health check gets
        through while every connection is held by a stalled upload)."""
        return any((name == b"content-length" and value.strip() not in (b"", b"0"))
                   or name == b"transfer-encoding" for name, value in self.headers)

    def on_message_complete(self) -> None:
        self._disarm()
        self._in_head, self._in_body, self._head_bytes = True, False, 0
        super().on_message_complete()

    def on_response_complete(self) -> None:
        self._served += 1
        super().on_response_complete()
        if not self.transport.is_closing() and self.cycle.response_complete:
            self.registry.now_kept_alive(self)  # nothing pipelined started

    def body_stalled(self, now: float) -> bool:
        """True while the request's body is awaited and nothing came for stalled_body_s."""
        return (self._in_body and not self._refusing and self.cycle is not None
                and not self.cycle.response_started
                and now - self.last_data >= self.limits.stalled_body_s)

    def evict(self) -> None:
        """Close to make room for a new connection (`Connections.make_room`)."""
        if self._refusing:
            self.transport.close()
        elif self.cycle is not None and not self.cycle.response_complete:  # body stalled
            self._refuse(408, "request body stalled while the server was full; retry",
                         "evicted_stalled_body", linger=False)
        elif self._served and not self._head_bytes:  # kept alive between requests
            self.transport.close()
            self.registry.refused("evicted_keep_alive", None, "OTHER")
        else:
            self._refuse(503, "the server is full and this connection sent no request in "
                         "time; retry shortly", "evicted_idle", retry=True, linger=False)

    def shutdown(self) -> None:
        """Called by uvicorn on SIGTERM or Ctrl-C, once no new connection is accepted."""
        if self._refusing:
            return
        if self.cycle is None or self.cycle.response_complete:
            if self._head_bytes:
                self._refuse(503, "the server is shutting down; retry shortly", "shutdown",
                             retry=True)
            else:
                self.transport.close()
        else:
            self.cycle.keep_alive = False
            self._shutdown_timer = self.loop.call_later(self.limits.shutdown_timeout_s,
                                                        self._shutdown_late)

    def _shutdown_late(self) -> None:
        if self.cycle is not None and not self.cycle.response_started:
            self._refuse(503, "the server is shutting down; retry shortly", "shutdown",
                         retry=True)
        elif not self.transport.is_closing():
            self.transport.close()

    def _headers_late(self) -> None:
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False  # a pipelined request: close after this answer
        else:
            self._refuse(408, "request headers not received in time", "headers_late")

    def _body_late(self) -> None:
        if self.cycle is not None and not self.cycle.response_started:
            self._refuse(408, "request body not received in time", "body_late")
        elif not self.transport.is_closing():
            self.transport.close()

    def _refuse(self, status: int, message: str, reason: str, *, method: str | None = None,
                retry: bool = False, linger: bool = True) -> None:
        """Answer `{"error": message}` and close, without the app (which has not seen
        this request, or whose answer is dropped)."""
        self._disarm()
        if self.transport.is_closing() or self._refusing:
            return
        self._refusing = True
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            if cycle.response_started:  # too late to answer: only closing is left
                self.transport.close()
                self.registry.refused(reason, None, _method(cycle.scope.get("method")))
                return
            cycle.scope[ANSWERED_BELOW] = True  # type: ignore[literal-required]
            method = method or _method(cycle.scope.get("method"))
            cycle.disconnected = True  # the app's answer is dropped
            cycle.message_event.set()  # and a handler reading the body hears of it
        method = method or "OTHER"
        body = b"" if method == "HEAD" else msgspec.json.encode(Error(message))
        head = [STATUS_LINE[status]]
        for name, value in [*self.server_state.default_headers, *SECURITY_HEADERS]:
            head += [name, b": ", value, b"\r\n"]
        if retry:
            head.append(b"retry-after: %d\r\n" % RETRY_AFTER_S)
        head += [b"content-type: application/json\r\n",
                 b"content-length: %d\r\n" % len(body), b"connection: close\r\n", b"\r\n"]
        self.transport.write(b"".join(head) + body)
        self.registry.refused(reason, status, _method(method))
        if linger and self.transport.can_write_eof():
            self.transport.write_eof()  # the client reads the answer, then its EOF
            self.flow.resume_reading()
            self.registry.now_closing(self)
            self._linger = self.loop.call_later(LINGER_S, self.transport.close)
        else:
            self.transport.close()

    def _arm(self, seconds: float, callback: Callable[[], None]) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None


def _method(method: object) -> str:
    """A method for a metrics label: one of METHODS, else OTHER."""
    return method if isinstance(method, str) and method in METHODS else "OTHER"


def guarded_protocol(limits: HttpLimits, metrics: Metrics | None = None
                     ) -> type[GuardedHttpToolsProtocol]:
    """The protocol class to hand uvicorn (`http=`), enforcing `limits` and counting
    its refusals in `metrics`; one per server (it holds the server's connections)."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,),
                {"limits": limits, "registry": Connections(limits.max_connections, metrics)})
