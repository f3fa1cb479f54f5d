"""Other web pages cannot drive or read a local service.

A page on another site can make the browser send "simple" requests without asking
first: form-urlencoded, multipart or text/plain bodies. It cannot read the answers,
unless DNS rebinding makes its own name point at 127.0.0.1; then the Host header still
names the attacker's domain. So: the APIs take only the content types a browser must
ask permission for (JSON, octet-stream, image types), state-changing requests whose
Origin is another site are refused, and only the allowed host names are answered.
"""

from pathlib import Path

import httpx
import pytest
from litestar.testing import TestClient

from ablate.errors import UserError
from serve.app import create_app
from serve.config import ServeConfig, from_env
from serve.server import allowed_hosts

INFER = "/v2/models/mnist/infer"
BODY = ('{"inputs": [{"name": "input", "shape": [1, 784], "datatype": "UINT8", "data": ['
        + ", ".join(["0"] * 784) + "]}]}")


@pytest.mark.parametrize("kind", ["text/plain", "application/x-www-form-urlencoded",
                                  "multipart/form-data; boundary=x", "text/html"])
def test_infer_refuses_what_a_foreign_page_may_send_unasked(client: TestClient, kind: str
                                                             ) -> None:
    r = client.post(INFER, content=BODY, headers={"content-type": kind})
    assert r.status_code == 415 and "application/json" in r.json()["error"], r.text


@pytest.mark.parametrize("kind", ["application/json", "application/json; charset=utf-8",
                                  "APPLICATION/JSON", None])
def test_infer_takes_json_and_clients_that_send_no_type(client: TestClient, kind: str | None
                                                        ) -> None:
    """tritonclient.http (geventhttpclient) sends no Content-Type at all."""
    headers = {"content-type": kind} if kind else {}
    request = client.build_request("POST", INFER, content=BODY, headers=headers)
    assert ("content-type" in request.headers) == (kind is not None)
    assert client.send(request).status_code == 200


@pytest.mark.parametrize("kind", ["text/plain", "application/x-www-form-urlencoded", None])
def test_predict_refuses_text_and_forms_and_untyped_bodies(client: TestClient,
                                                          kind: str | None) -> None:
    request = client.build_request("POST", "/v1/predict", content='{"pixels": [' +
                                   ", ".join(["0"] * 784) + "]}",
                                   headers={"content-type": kind} if kind else {})
    assert ("content-type" in request.headers) == (kind is not None)
    r = client.send(request)
    assert r.status_code == 415 and "application/json" in r.json()["error"], r.text


def test_a_cross_site_post_is_refused(client: TestClient) -> None:
    ok = {"content-type": "application/json", "host": "127.0.0.1:8000"}
    r = client.post(INFER, content=BODY, headers={**ok, "origin": "http://evil.example"})
    assert r.status_code == 403 and set(r.json()) == {"error"}
    assert "evil" not in r.text
    r = client.post(INFER, content=BODY, headers={**ok, "origin": "null"})
    assert r.status_code == 403
    # The page itself: its origin is this server's.
    r = client.post(INFER, content=BODY, headers={**ok, "origin": "http://127.0.0.1:8000"})
    assert r.status_code == 200
    metrics = client.get("/metrics").text
    assert 'endpoint="/v2/models/{model}/infer",method="POST",status="403"' in metrics


def test_only_allowed_hosts_are_answered(model_path: Path) -> None:
    config = ServeConfig(allowed_hosts=("localhost", "127.0.0.1", "::1"))
    with TestClient(create_app(model_path, "mnist", config)) as c:
        for host in ("localhost", "localhost:8000", "LOCALHOST:8000", "127.0.0.1:9",
                     "[::1]:8000", "localhost."):
            assert c.get("/v1/model", headers={"host": host}).status_code == 200, host
        for host in ("evil.example", "evil.example:8000", "localhost.evil.example",
                     "127.0.0.1.nip.io", "[::2]:8000"):
            r = c.get("/v1/model", headers={"host": host})
            assert r.status_code == 400, host
            assert "ABLATE_SERVE_ALLOWED_HOSTS" in r.json()["error"]
            assert "evil" not in r.text and "nip" not in r.text


@pytest.mark.parametrize("bind, configured, expected", [
    ("127.0.0.1", None, ("localhost", "127.0.0.1", "::1")),
    ("localhost", None, ("localhost", "127.0.0.1", "::1")),
    ("::1", None, ("localhost", "127.0.0.1", "::1")),
    ("0.0.0.0", None, None),  # every interface: any name, unless configured
    ("0.0.0.0", ("digits.example.org",), ("digits.example.org",)),
    ("127.0.0.1", ("*",), None),
])
def test_the_default_follows_the_bind_address(bind: str, configured: tuple[str, ...] | None,
                                              expected: tuple[str, ...] | None) -> None:
    assert allowed_hosts(bind, configured) == expected


def test_allowed_hosts_from_the_environment() -> None:
    config = from_env({"ABLATE_SERVE_ALLOWED_HOSTS": " Digits.Example.org, localhost "})
    assert config.allowed_hosts == ("digits.example.org", "localhost")
    assert from_env({"ABLATE_SERVE_ALLOWED_HOSTS": "*"}).allowed_hosts == ("*",)
    for bad in ("http://x.org", "x.org/path", "", "a b"):
        with pytest.raises(UserError, match="ABLATE_SERVE_ALLOWED_HOSTS"):
            from_env({"ABLATE_SERVE_ALLOWED_HOSTS": bad})


def test_a_real_server_on_loopback_refuses_other_host_names(live_server: str) -> None:
    """DNS rebinding: the attacker's name resolves to 127.0.0.1, but the Host header
    still carries it."""
    port = live_server.rsplit(":", 1)[1]
    assert httpx.get(f"{live_server}/v1/model", headers={"host": "evil.example"}
                     ).status_code == 400
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        assert httpx.get(f"{live_server}/v1/model", headers={"host": host}).status_code == 200
