"""Clients that go away, and paths no file has, are not server errors: a real server,
its metrics and its log."""

import socket
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.serve.conftest import free_port, start_server, stop_server


def requests_by_status(base: str) -> dict[tuple[str, str], float]:
    text = httpx.get(f"{base}/metrics").text
    return {(s.labels["endpoint"], s.labels["status"]): s.value
            for f in text_string_to_metric_families(text) for s in f.samples
            if s.name == "ablate_http_requests_total"}


def test_hanging_up_mid_body_and_odd_static_paths_are_not_500(model_path: Path,
                                                                tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "server.log"
    proc = start_server(model_path, port, log=log)
    base = f"http://127.0.0.1:{port}"
    try:
        for path, kind in [("/v2/models/mnist/infer", "application/json"),
                           ("/v1/predict", "application/json"), ("/v1/predict", "image/png")]:
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {kind}\r\n"
                          "Content-Length: 1000\r\n\r\n".encode() + b"{\"inputs\": [")
                time.sleep(0.1)  # the handler is reading the body when the client leaves
        for odd in ("/static/%00", "/static/..%2f..%2fetc%2fpasswd", "/static/%ff",
                    "/static/app.js%00.png"):
            assert httpx.get(base + odd).status_code == 404, odd
        deadline = time.monotonic() + 10
        while True:
            counts = requests_by_status(base)
            gone = sum(v for (_, status), v in counts.items() if status == "499")
            if gone >= 3 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    finally:
        stop_server(proc)
    # Counted as the client's doing (nginx's 499, "client closed request"), never as 5xx.
    assert counts[("/v2/models/{model}/infer", "499")] == 1
    assert counts[("/v1/predict", "499")] == 2
    assert not [k for k in counts if k[1].startswith("5")], counts
    text = log.read_text()
    assert "error" not in text.lower() and "Traceback" not in text, text
