"""Issue 20's attacks, each at a small size: a 4xx or a bounded answer, no 5xx, and the
service goes on answering. `benchmarks/serve_abuse.py` runs them at full size.

The live servers run with small limits, so that every probe is decided by a limit and
not by how fast this machine is: only lower bounds on time are waited for.
"""

import asyncio
import base64
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from litestar.testing import TestClient

from serve import segments
from serve.api_error import ApiError
from serve.app import create_app
from serve.config import Limits, ServeConfig
from serve.decoding import DecodePool
from serve.metrics import Metrics
from tests.serve.attacks import (
    body_of,
    connect,
    headers_of,
    health,
    many_scan_jpeg,
    multipart,
    multipart_mistakes,
    png_chunk_flood,
    read_response,
    read_until_closed,
    request_head,
    status_of,
    stream_open_header,
)
from tests.serve.conftest import free_port, start_server, stop_server
from tests.serve.images import worst_images
from tests.serve.test_http_limits import refusals
from tests.serve.test_predict import drawn

MIB = 1 << 20
SLACK = 4.0  # seconds a loaded machine may add before the server acts
DIGIT = np.zeros((28, 28), np.uint8)
DIGIT[5:23, 12:16] = 255  # a bar: a "1"
ATTACKED = {"ABLATE_SERVE_MAX_CONNECTIONS": "12", "ABLATE_SERVE_MAX_HEADER_BYTES": "8192",
            "ABLATE_SERVE_STALLED_BODY_S": "0.5", "ABLATE_SERVE_MAX_BODY_BYTES": "65536",
            "ABLATE_SERVE_MAX_HELD_BODY_BYTES": "100000"}


@pytest.fixture(scope="module")
def attacked(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A real server with the small limits above; its port."""
    port = free_port()
    proc = start_server(model_path, port, env=ATTACKED,
                        log=tmp_path_factory.mktemp("attacked") / "server.log")
    try:
        yield port
    finally:
        stop_server(proc)


def assert_refusal(response: bytes, status: int, retry: bool) -> None:
    """A refusal below the app: JSON, the security headers, Retry-After on a 503."""
    assert status_of(response) == status, response[:300]
    headers = headers_of(response)
    assert headers["content-type"] == "application/json"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-security-policy"].startswith("default-src 'none'")
    assert headers["connection"] == "close"
    assert ("retry-after" in headers) == retry
    assert set(json.loads(body_of(response))) == {"error"}


# 1. Headers are counted as they arrive.

def test_an_open_header_streamed_in_pieces_is_431_at_the_limit(attacked: int) -> None:
    """Before, the count ran only when a header line ended: this got no answer until
    the header timeout (408), while the server appended every piece."""
    before = refusals(attacked)
    response, _ = stream_open_header(attacked, piece=1024, seconds=SLACK + 5)
    assert_refusal(response, 431, retry=False)
    assert json.loads(body_of(response)) == {
        "error": "request headers too large: at most 8,192 bytes"}
    assert refusals(attacked)["headers_too_large"] == before.get("headers_too_large", 0) + 1
    assert health(attacked)[0] == 200


def test_a_header_name_left_open_is_431_too(attacked: int) -> None:
    with connect(attacked) as s:
        s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X" * 20_000)
        assert_refusal(read_until_closed(s), 431, retry=False)


def test_a_head_under_the_limit_sent_with_its_body_and_a_pipelined_request_is_served(
        attacked: int) -> None:
    """Only the head is counted: a body (and the next request) in the same packet as a
    7,000-byte head are not taken for header bytes."""
    body = json.dumps({"pixels": DIGIT.tolist()}).encode()
    first = request_head("POST", "/v1/predict", "Content-Type: application/json",
                         f"Content-Length: {len(body)}", "X-Pad: " + "a" * 7000)
    second = request_head("GET", "/v2/health/live", "Connection: close", "X-Pad: " + "b" * 7000)
    with connect(attacked) as s:
        s.sendall(first + body + second)
        answers = read_until_closed(s)
    assert answers.count(b"HTTP/1.1 200 OK") == 2, answers[:300]
    assert b'"digit":1' in answers


def test_a_malformed_request_gets_a_json_400(attacked: int) -> None:
    before = refusals(attacked)
    with connect(attacked) as s:
        s.sendall(b"GARBAGE\r\n\r\n")
        response = read_until_closed(s)
    assert_refusal(response, 400, retry=False)
    after = refusals(attacked)
    assert after["bad_request"] == before.get("bad_request", 0) + 1
    assert after["status 400"] == before.get("status 400", 0) + 1


# 2. Image decoding is bounded in CPU time.

@pytest.mark.parametrize("name, image", [
    ("a JPEG of 70 extra scans", many_scan_jpeg(64, 64, 70)),
    ("a JPEG of 1,000 markers", many_scan_jpeg(64, 64, 0)[:2]
     + b"\xff\xfe\x00\x02" * 1000 + many_scan_jpeg(64, 64, 0)[2:]),
    ("a PNG of 300 text chunks", png_chunk_flood(300)),
])
def test_images_of_too_many_segments_are_413_before_decoding(client: TestClient, name: str,
                                                             image: bytes) -> None:
    kind = "image/jpeg" if image.startswith(b"\xff\xd8") else "image/png"
    r = client.post("/v1/predict", content=image, headers={"content-type": kind})
    assert r.status_code == 413 and "too complex" in r.json()["error"], (name, r.text)


def test_images_just_within_the_segment_limits_are_decoded(client: TestClient) -> None:
    """The limits sit above what encoders write (counted on Pillow's output here),
    and an image at them is served: a refusal above comes from the limit."""
    for name, data in worst_images().items():
        count = (segments.count_jpeg(data) if name.startswith("jpeg") else
                 segments.count_png(data))
        assert 0 < count.total <= 100, (name, count)
    jpeg = many_scan_jpeg(64, 64, segments.MAX_SCANS - 6)  # Pillow's grey progression: 6
    assert segments.count_jpeg(jpeg).scans == segments.MAX_SCANS
    png = png_chunk_flood(segments.MAX_PNG_CHUNKS - 3)  # IHDR and IEND are chunks too
    assert segments.count_png(png).total - segments.count_png(png).scans == (
        segments.MAX_PNG_CHUNKS - 1)
    for data, kind in ((jpeg, "image/jpeg"), (png, "image/png")):
        r = client.post("/v1/predict", content=data, headers={"content-type": kind})
        assert r.status_code in (200, 400), r.text  # the black JPEG has no digit: 400
        assert "too complex" not in r.text


def test_a_decode_past_its_deadline_is_stopped_413_and_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    """The costliest admissible image cannot be decoded in 10 ms: its worker process is
    killed, the request gets 413, the log says so, and a fresh worker serves the next."""
    metrics = Metrics()
    pool = DecodePool(Limits(decode_timeout_s=0.01), metrics)
    worst = worst_images()["jpeg-progressive-cmyk"]

    async def main() -> tuple[ApiError, np.ndarray, int | None, int | None]:
        await pool.start()
        first = pool.workers[0].pid
        with pytest.raises(ApiError) as refused:
            await pool.prepare(worst)
        restarted = pool.workers[0].pid
        pool.timeout_s = 60.0
        return refused.value, await pool.prepare(drawn(DIGIT)), first, restarted

    try:
        with caplog.at_level(logging.WARNING, logger="serve"):
            error, x, first, restarted = asyncio.run(main())
    finally:
        pool.close()
    assert error.status == 413 and "took over 0.01 s" in error.message
    assert first is not None and restarted is not None and restarted != first
    assert x.shape == (784,) and x.max() > 0.5  # the digit was prepared
    assert metrics.registry.get_sample_value("ablate_image_decode_timeouts_total") == 1
    assert any("ran past 0.01 s" in r.getMessage() for r in caplog.records)
    assert pool.workers[0].pid is None  # closed: the worker process is gone


def test_the_decoder_is_a_separate_process_and_its_limits_are_the_servers(
        model_path: Path) -> None:
    app = create_app(model_path, "mnist", ServeConfig(limits=Limits(max_image_pixels=100_000)))
    with TestClient(app) as client:
        big = drawn(DIGIT)  # 400 x 300 = 120,000 pixels
        r = client.post("/v1/predict", content=big, headers={"content-type": "image/png"})
        assert r.status_code == 413 and "100,000 pixels" in r.json()["error"]
        pids = [w.pid for w in app.state["service"].decodes.workers]
    assert pids and all(pid is not None and pid != os.getpid() for pid in pids)


# 3. Multipart mistakes are not server errors.

@pytest.mark.parametrize("name", list(multipart_mistakes(b"")))
def test_multipart_mistakes_are_served(client: TestClient, name: str) -> None:
    """curl -F 'image=<digit.png' sends the file as a plain field: its bytes are the
    image, whatever the part's filename or charset say; other fields are ignored."""
    body, kind = multipart_mistakes(drawn(DIGIT))[name]
    r = client.post("/v1/predict", content=body, headers={"content-type": kind})
    assert r.status_code == 200 and r.json()["digit"] == 1, (name, r.text)


@pytest.mark.parametrize("name, body, kind", [
    ("no boundary", multipart(('name="image"', None, b"x"))[0], "multipart/form-data"),
    ("truncated", multipart(('name="image"', None, b"x"))[0][:-10],
     multipart(('name="image"', None, b"x"))[1]),
    ("no image part", *multipart(('name="picture"', None, b"x"))),
    ("two image parts", *multipart(('name="image"', None, b"x"), ('name="image"', None, b"y"))),
    ("too many parts", *multipart(*[(f'name="f{i}"', None, b"x") for i in range(20)])),
    ("not multipart at all", b"\x00\xff" * 100, "multipart/form-data; boundary=AaB03x"),
])
def test_malformed_forms_are_400(client: TestClient, name: str, body: bytes, kind: str
                                 ) -> None:
    r = client.post("/v1/predict", content=body, headers={"content-type": kind})
    assert r.status_code == 400 and "multipart" in r.json()["error"], (name, r.text)


# 4. Memory beyond images: bodies held in total, array lengths before decoding.

def held_body_bytes(port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    line = next(x for x in text.splitlines() if x.startswith("ablate_http_held_body_bytes "))
    return float(line.split()[1])


def test_bodies_held_at_once_are_bounded_across_connections(attacked: int) -> None:
    """The budget is 100,000 bytes: one request holding 60,000 leaves no room for a
    second of 60,000, which gets 503 + Retry-After before its body is read."""
    body = json.dumps({"pixels": DIGIT.tolist()}).encode().ljust(60_000)
    head = request_head("POST", "/v1/predict", "Content-Type: application/json",
                        f"Content-Length: {len(body)}")
    with connect(attacked) as holder:
        holder.sendall(head + body[:1000])
        deadline = time.monotonic() + SLACK
        while held_body_bytes(attacked) != 60_000:
            assert time.monotonic() < deadline, "the first body was never taken"
            time.sleep(0.02)
        with connect(attacked) as second:
            second.sendall(head)  # not one byte of its body
            response = read_response(second)
        assert status_of(response) == 503, response
        assert headers_of(response)["retry-after"] == "1"
        assert "too many request bodies" in json.loads(body_of(response))["error"]
        holder.sendall(body[1000:])
        answer = read_response(holder)
    assert status_of(answer) == 200 and b'"digit":1' in answer
    deadline = time.monotonic() + SLACK
    while held_body_bytes(attacked) != 0:
        assert time.monotonic() < deadline, "the body was never given back"
        time.sleep(0.02)


def traced_peak(client: TestClient, path: str, body: bytes) -> tuple[int, int]:
    """(status, peak bytes traced while the app answered `body`) — the app runs in
    the test client's thread, which tracemalloc traces too."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        r = client.post(path, content=body, headers={"content-type": "application/json"})
        return r.status_code, tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


VALUES = 3_500_000  # "0," each: 7 MiB of text, ~110 MiB as a list of Python floats


@pytest.mark.parametrize("what, path, body", [
    ("/v1/predict pixels", "/v1/predict", b'{"pixels": [' + b"0," * VALUES + b"0]}"),
    ("V2 data of a [1, 784] tensor", "/v2/models/mnist/infer",
     b'{"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": ['
     + b"0," * VALUES + b"0]}]}"),
    ("V2 parameters", "/v2/models/mnist/infer",
     b'{"parameters": {"x": [' + b"0," * VALUES + b'0]}, "inputs": []}'),
])
def test_long_arrays_are_refused_before_they_are_decoded(client: TestClient, what: str,
                                                         path: str, body: bytes) -> None:
    """Decoded, the values would take ~110 MiB; the request costs what its body does
    (the client's copy, the server's chunks and their join)."""
    status, peak = traced_peak(client, path, body)
    assert status in (400, 413), what
    assert peak < 5 * len(body), (what, peak / MIB)


# 5. Refusals are seen, and silent sockets cannot lock anyone out.

def test_silent_sockets_make_room_for_a_client_that_speaks(attacked: int) -> None:
    """Twenty sockets that send nothing, against a limit of twelve (and an overflow of
    eight for young connections): the next newcomer closes the longest silent one
    (503, JSON) however young, and a health check gets its 200."""
    before = refusals(attacked)
    with contextlib.ExitStack() as stack:
        silent = [stack.enter_context(connect(attacked)) for _ in range(20)]
        assert health(attacked)[0] == 200
        assert_refusal(read_until_closed(silent[0]), 503, retry=True)
    assert refusals(attacked)["evicted_idle"] >= before.get("evicted_idle", 0) + 1


def test_silent_sockets_past_their_grace_make_room_within_the_overflow(attacked: int) -> None:
    """Thirteen silent sockets (one over the limit, within the overflow) are left
    alone while young; once they have had a second to speak, a newcomer closes the
    oldest one."""
    with contextlib.ExitStack() as stack:
        silent = [stack.enter_context(connect(attacked)) for _ in range(13)]
        time.sleep(1.1)  # at least the grace
        assert health(attacked)[0] == 200
        assert_refusal(read_until_closed(silent[0]), 503, retry=True)


def test_stalled_bodies_make_room_for_a_client_that_speaks(attacked: int) -> None:
    """Twelve requests whose bodies stopped coming (for over the 0.5 s this server
    allows): the next connection closes the longest stalled one (408) and is served."""
    held = [connect(attacked) for _ in range(12)]
    try:
        for s in held:
            s.sendall(request_head("POST", "/v1/predict", "Content-Type: application/json",
                                   "Content-Length: 100"))
        time.sleep(0.6)  # at least the stall the server waits for
        assert health(attacked)[0] == 200
        assert_refusal(read_until_closed(held[0]), 408, retry=False)
    finally:
        for s in held:
            s.close()


# 6. Shutdown answers every request in flight, and cleans up.

def test_sigterm_answers_every_request_and_removes_the_temporary_export(
        run_dir: Path, tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    port, log = free_port(), tmp_path / "server.log"
    proc = start_server(run_dir, port, log=log, env={
        "TMPDIR": str(tmp), "ABLATE_SERVE_SHUTDOWN_TIMEOUT_S": "1"})
    with contextlib.ExitStack() as sockets:
        assert [p.name[:13] for p in tmp.iterdir()] == ["ablate-serve-"]  # the export
        sockets.callback(stop_server, proc)
        uploads = [sockets.enter_context(connect(port)) for _ in range(8)]
        for s in uploads:  # in the app, reading a body that will not finish in time
            s.sendall(request_head("POST", "/v1/predict", "Content-Type: application/json",
                                   "Content-Length: 100000") + b" " * 1000)
        partial = sockets.enter_context(connect(port))
        partial.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: 12")  # headers unfinished
        finishing = sockets.enter_context(connect(port))  # answered within the grace period
        body = json.dumps({"pixels": DIGIT.tolist()}).encode()
        finishing.sendall(request_head("POST", "/v1/predict", "Content-Type: application/json",
                                       f"Content-Length: {len(body)}") + body[:10])
        time.sleep(0.3)  # the server has read them all
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        finishing.sendall(body[10:])
        for s in uploads[:4]:  # still uploading after the signal
            s.sendall(b" " * 1000)
        assert status_of(read_until_closed(finishing)) == 200
        assert_refusal(read_until_closed(partial), 503, retry=True)
        for s in uploads:
            response = read_until_closed(s)
            assert_refusal(response, 503, retry=True)
            assert json.loads(body_of(response)) == {
                "error": "the server is shutting down; retry shortly"}
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    assert list(tmp.iterdir()) == []  # the temporary export is gone
    text = log.read_text()
    assert "Traceback" not in text and "ERROR" not in text, text


# 7. Minor: the port, repeated headers, the Origin's scheme, a blank Content-Type.

def test_a_port_out_of_range_is_a_user_error(model_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "ablate.cli", "serve", str(model_path),
                          "--port", "70000"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip() == "error: --port 70000: must be 1 to 65535 (e.g. 8000)"


INFER_BODY = json.dumps({"inputs": [{"name": "input", "shape": [1, 784], "datatype": "UINT8",
                                     "data": [0] * 784}]})


@pytest.mark.parametrize("headers, status", [
    (["Host: 127.0.0.1", "Host: evil.example"], 400),
    (["Host: evil.example", "Host: 127.0.0.1"], 400),
    (["Origin: http://evil.example", "Origin: http://127.0.0.1:{port}"], 400),
    (["Content-Type: application/json", "Content-Type: text/plain"], 400),
    (["Origin: https://127.0.0.1:{port}"], 403),  # the scheme differs
    (["Origin: null"], 403),
    (["Origin: http://127.0.0.1:{port}"], 200),
    (["Content-Type: ;;;"], 415),
    (["Content-Type: application/json;;;"], 200),
])
def test_ambiguous_headers_are_refused(attacked: int, headers: list[str], status: int) -> None:
    """Raw requests: an HTTP client (and Litestar's test client) would join repeated
    headers into one."""
    lines = [h.format(port=attacked) for h in headers]
    if not any(h.startswith("Host:") for h in lines):
        lines.insert(0, f"Host: 127.0.0.1:{attacked}")
    if not any(h.startswith("Content-Type:") for h in lines):
        lines.append("Content-Type: application/json")
    for path, body in (("/v2/models/mnist/infer", INFER_BODY),
                       ("/v1/predict", json.dumps({"pixels": DIGIT.tolist()}))):
        head = "\r\n".join([f"POST {path} HTTP/1.1", *lines, f"Content-Length: {len(body)}",
                             "Connection: close"]) + "\r\n\r\n"
        with connect(attacked) as s:
            s.sendall(head.encode() + body.encode())
            response = read_until_closed(s)
        assert status_of(response) == status, (path, headers, response[-200:])
        if status != 200:
            assert set(json.loads(body_of(response))) == {"error"}
            assert b"evil" not in response


def test_an_image_in_json_still_works_beside_the_limits(client: TestClient) -> None:
    """The comma count that refuses long arrays leaves a data: URL (one comma) alone."""
    url = "data:image/png;base64," + base64.b64encode(drawn(DIGIT)).decode()
    r = client.post("/v1/predict", json={"image": url})
    assert r.status_code == 200 and r.json()["digit"] == 1, r.text
