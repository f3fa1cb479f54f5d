"""HTTP-layer limits of a real `ablate serve`, probed with raw sockets.

One server runs with small limits (timeouts of about a second) so that each probe
takes about that long; every bound below leaves seconds of room for a loaded machine,
and the lower bounds show it was the limit, not something else, that acted.
"""

import json
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.serve.conftest import free_port, start_server, stop_server

STRICT = {"ABLATE_SERVE_HEADER_TIMEOUT_S": "1", "ABLATE_SERVE_BODY_TIMEOUT_S": "1",
          "ABLATE_SERVE_KEEP_ALIVE_S": "1", "ABLATE_SERVE_MAX_HEADER_BYTES": "8192",
          "ABLATE_SERVE_MAX_CONNECTIONS": "12", "ABLATE_SERVE_STALLED_BODY_S": "60"}
SLACK = 4.0  # seconds a loaded machine may add before the server acts


@pytest.fixture(scope="module")
def strict(model_path: Path) -> Iterator[int]:
    """A real server with the limits above; its port."""
    port = free_port()
    proc = start_server(model_path, port, env=STRICT)
    try:
        yield port
    finally:
        stop_server(proc)


def connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=SLACK + 5)
    return s


def read_until_closed(s: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes; and when it closed."""
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    return data, time.monotonic()


def read_response(s: socket.socket) -> bytes:
    """One whole response (head and a Content-Length body), leaving the socket open."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    head, body = data.split(b"\r\n\r\n", 1)
    length = next(int(line.split(b":")[1]) for line in head.lower().split(b"\r\n")
                  if line.startswith(b"content-length:"))
    while len(body) < length:
        body += s.recv(65536)
    return head + b"\r\n\r\n" + body


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def test_headers_over_the_limit_are_431_and_closed(strict: int) -> None:
    with connect(strict) as s:
        s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
                  + b"a" * 64 * 1024 + b"\r\n\r\n")
        response, _ = read_until_closed(s)
    assert status_of(response) == 431, response[:200]
    body = json.loads(response.split(b"\r\n\r\n", 1)[1])
    assert body == {"error": "request headers too large: at most 8,192 bytes"}
    with connect(strict) as s:  # headers just under the limit are fine
        s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                  b"X-Big: " + b"a" * 7000 + b"\r\n\r\n")
        assert status_of(read_until_closed(s)[0]) == 200


def test_half_sent_headers_are_408_and_closed(strict: int) -> None:
    with connect(strict) as s:
        start = time.monotonic()
        s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # no blank line
        response, closed = read_until_closed(s)
    assert status_of(response) == 408, response
    assert 0.9 <= closed - start <= 1 + SLACK


def test_a_silent_connection_is_closed(strict: int) -> None:
    with connect(strict) as s:
        start = time.monotonic()
        response, closed = read_until_closed(s)
    assert status_of(response) == 408
    assert 0.9 <= closed - start <= 1 + SLACK


def test_a_body_that_does_not_arrive_is_408_and_closed(strict: int) -> None:
    with connect(strict) as s:
        s.sendall(b"POST /v2/models/mnist/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"inputs\"")
        start = time.monotonic()
        response, closed = read_until_closed(s)
    assert status_of(response) == 408, response
    assert b"connection: close" in response.lower()
    assert "error" in json.loads(response.split(b"\r\n\r\n", 1)[1])
    assert 0.9 <= closed - start <= 1 + SLACK


def test_an_idle_keep_alive_connection_is_closed(strict: int) -> None:
    with connect(strict) as s:
        s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        first = read_response(s)
        answered = time.monotonic()
        rest, closed = read_until_closed(s)
    assert status_of(first) == 200 and rest == b""
    assert 0.9 <= closed - answered <= 1 + SLACK  # uvicorn's default would be 5 s


def refusals(port: int) -> dict[str, float]:
    """ablate_http_refusals_total by reason, and the requests counted under endpoint
    'connection' by status (keys 'status 503', ...)."""
    with connect(port) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        text = read_until_closed(s)[0].split(b"\r\n\r\n", 1)[1].decode()
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "ablate_http_refusals_total":
                counts[sample.labels["reason"]] = sample.value
            elif (sample.name == "ablate_http_requests_total"
                  and sample.labels["endpoint"] == "connection"):
                key = f"status {sample.labels['status']}"
                counts[key] = counts.get(key, 0) + sample.value
    return counts


def test_connections_beyond_the_limit_get_503(strict: int) -> None:
    """Twelve connections each hold a request in flight (its body unsent); the next
    request with a body is refused at once, with JSON, Retry-After and the security
    headers, and counted (one without a body, which holds nothing, is served); it is
    served again once they are gone."""
    before = refusals(strict)
    held = [connect(strict) for _ in range(12)]
    try:
        for s in held:
            s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n")
        time.sleep(0.2)  # the server has read them (its loop is otherwise idle)
        with connect(strict) as s:
            s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"Connection: close\r\n\r\n")
            assert status_of(read_until_closed(s)[0]) == 200
        with connect(strict) as s:
            s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                      b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
            response = read_until_closed(s)[0]
        assert status_of(response) == 503, response
        head, body = response.split(b"\r\n\r\n", 1)
        assert json.loads(body) == {"error": "the server is at its connection limit; retry "
                                             "shortly"}
        for header in (b"retry-after: 1", b"x-content-type-options: nosniff",
                       b"content-security-policy: default-src 'none'",
                       b"content-type: application/json"):
            assert header in head.lower() or header in head, head
    finally:
        for s in held:
            s.close()
    deadline = time.monotonic() + SLACK
    while True:
        with connect(strict) as s:
            s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                      b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
            if status_of(read_until_closed(s)[0]) == 400:  # served: the body is no request
                break
        assert time.monotonic() < deadline, "the server did not recover"
        time.sleep(0.1)
    after = refusals(strict)
    assert after.get("connection_limit", 0) >= before.get("connection_limit", 0) + 1
    assert after.get("status 503", 0) >= before.get("status 503", 0) + 1


def test_shutdown_does_not_wait_for_a_slow_client(model_path: Path) -> None:
    """SIGTERM with a request still receiving its body: the server gives it
    ABLATE_SERVE_SHUTDOWN_TIMEOUT_S (1 s here, the body timeout being a minute) and exits."""
    port = free_port()
    proc = start_server(model_path, port, env={"ABLATE_SERVE_SHUTDOWN_TIMEOUT_S": "1",
                                               "ABLATE_SERVE_BODY_TIMEOUT_S": "60"})
    try:
        with connect(port) as s:
            s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
            time.sleep(0.2)
            start = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=1 + SLACK + 5)
            except subprocess.TimeoutExpired:
                pytest.fail("the server still waits for the slow client")
            assert time.monotonic() - start >= 0.9  # it did give the request its second
    finally:
        stop_server(proc)
