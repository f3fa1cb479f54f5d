"""Every class of bad input gets a 4xx `{"error": ...}` that does not quote the input,
and the server keeps serving."""

import base64
import io
import json
import struct
import zlib
from typing import Any

import numpy as np
import pytest
from litestar.testing import TestClient
from PIL import Image

from serve.app import create_app
from serve.config import BatchConfig, Limits, ServeConfig

MARK = "Zq9xMARK"  # planted in requests; must never come back
INFER = "/v2/models/mnist/infer"


def infer_body(**fields: Any) -> dict[str, Any]:
    tensor = {"name": "input", "shape": [1, 784], "datatype": "FP32", "data": [0.0] * 784}
    tensor.update(fields)
    return {"id": MARK, "inputs": [tensor]}


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with a few bytes of pixel data: a
    decompression bomb's shape, without the bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


BAD_INFER: list[tuple[str, Any, int]] = [
    # (what, body (bytes, or JSON-able), status)
    ("empty body", b"", 400),
    ("whitespace body", b"  \n", 400),
    ("malformed JSON", b'{"inputs": [' + MARK.encode(), 400),
    ("NaN literal", b'{"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", '
                    b'"data": [NaN]}], "id": "' + MARK.encode() + b'"}', 400),
    ("JSON array", [MARK], 400),
    ("JSON string", MARK, 400),
    ("no inputs key", {"id": MARK}, 400),
    ("zero inputs", {"id": MARK, "inputs": []}, 400),
    ("two inputs", {"inputs": [infer_body()["inputs"][0]] * 2}, 400),
    ("inputs not a list", {"inputs": MARK}, 400),
    ("id not a string", {"id": 5, "inputs": infer_body()["inputs"]}, 400),
    ("id too long", {"id": MARK * 100, "inputs": infer_body()["inputs"]}, 400),
    ("unknown input name", infer_body(name=MARK), 400),
    ("unknown datatype", infer_body(datatype=MARK), 400),
    ("FP64 datatype", infer_body(datatype="FP64"), 400),
    ("BYTES data", infer_body(datatype="UINT8", data=[MARK] * 784), 400),
    ("strings as FP32", infer_body(data=[MARK] * 784), 400),
    ("booleans as FP32", infer_body(data=[True] * 784), 400),
    ("nulls", infer_body(data=[None] * 784), 400),
    ("objects in data", infer_body(data=[{MARK: 1}] * 784), 400),
    ("floats as UINT8", infer_body(datatype="UINT8", data=[0.5] * 784), 400),
    ("shape of 1 dim", infer_body(shape=[784]), 400),
    ("shape of wrong features", infer_body(shape=[1, 785], data=[0.0] * 785), 400),
    ("shape [1, 28, 27]", infer_body(shape=[1, 28, 27]), 400),
    ("shape [N, 3, 28, 28]", infer_body(shape=[1, 3, 28, 28]), 400),
    ("zero batch", infer_body(shape=[0, 784], data=[]), 400),
    ("negative dim", infer_body(shape=[-1, 784]), 400),
    ("huge dim", infer_body(shape=[2**70, 784]), 413),
    ("shape not ints", infer_body(shape=["a", 784]), 400),
    ("too few values", infer_body(data=[0.0] * 783), 400),
    ("too many values", infer_body(data=[0.0] * 785), 400),
    ("data for 2, shape says 1", infer_body(data=[0.0] * 1568), 400),
    ("ragged nesting", infer_body(shape=[1, 28, 28], data=[[0.0] * 28] * 27 + [[0.0] * 27]), 400),
    ("nesting not matching shape", infer_body(shape=[1, 28, 28], data=[[0.0] * 784]), 400),
    ("deep nesting", b'{"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", '
                     b'"data": ' + b"[" * 50_000 + b"]" * 50_000 + b"}]}", 400),
    ("FP32 above 1", infer_body(data=[0.0] * 783 + [1.5]), 400),
    ("FP32 below 0", infer_body(data=[-0.1] + [0.0] * 783), 400),
    ("FP32 overflow", b'{"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", '
                      b'"data": [' + b"1e999," * 783 + b'1e999]}]}', 400),
    ("FP32 1e39 (inf in float32)", infer_body(data=[1e39] * 784), 400),
    ("UINT8 256", infer_body(datatype="UINT8", data=[256] * 784), 400),
    ("UINT8 negative", infer_body(datatype="UINT8", data=[-1] * 784), 400),
    ("UINT8 2**64", infer_body(datatype="UINT8", data=[2**64] * 784), 400),
    ("data longer than the shape by far", infer_body(data=[0] * 784 * 50), 400),
    ("too many items", infer_body(shape=[257, 784], data=[0.0]), 413),
    ("unknown output", {"inputs": infer_body()["inputs"], "outputs": [{"name": MARK}]}, 400),
    ("duplicate output", {"inputs": infer_body()["inputs"],
                          "outputs": [{"name": "label"}, {"name": "label"}]}, 400),
    ("outputs empty", {"inputs": infer_body()["inputs"], "outputs": []}, 400),
    ("no data", {"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32"}]}, 400),
    ("binary junk", bytes(range(256)) * 4, 400),
    ("invalid UTF-8", b'{"id": "\xff\xfe' + MARK.encode() + b'", "inputs": []}', 400),
]


def binary_body(header: dict[str, Any], blob: bytes, length: str | bytes | None = None
                ) -> tuple[bytes, dict[str, str | bytes]]:
    head = json.dumps(header).encode()
    return head + blob, {"Inference-Header-Content-Length": length or str(len(head))}


BINARY_INPUT = {"name": "input", "shape": [1, 784], "datatype": "UINT8",
                "parameters": {"binary_data_size": 784}}
BAD_BINARY: list[tuple[str, tuple[bytes, dict[str, str | bytes]]]] = [
    ("header length not a number", binary_body({"inputs": [BINARY_INPUT]}, bytes(784), MARK)),
    ("header length zero", binary_body({"inputs": [BINARY_INPUT]}, bytes(784), "0")),
    ("header length of 5,000 digits", binary_body({"inputs": [BINARY_INPUT]}, bytes(784),
                                                   "9" * 5000)),
    ("header length in superscript", binary_body({"inputs": [BINARY_INPUT]}, bytes(784),
                                                 "\u00b2".encode("latin-1"))),
    ("header length in Arabic-Indic digits", binary_body({"inputs": [BINARY_INPUT]},
                                                         bytes(784), "\u0665\u0668".encode())),
    ("header length with a sign", binary_body({"inputs": [BINARY_INPUT]}, bytes(784), "+58")),
    ("header length with spaces inside", binary_body({"inputs": [BINARY_INPUT]}, bytes(784),
                                                     "5 8")),
    ("header length past the body", binary_body({"inputs": [BINARY_INPUT]}, bytes(784),
                                                "999999")),
    ("header length cuts the JSON", binary_body({"inputs": [BINARY_INPUT]}, bytes(784), "20")),
    ("blob too short", binary_body({"inputs": [BINARY_INPUT]}, bytes(783))),
    ("blob too long", binary_body({"inputs": [BINARY_INPUT]}, bytes(785))),
    ("size says FP32 is 1 byte", binary_body({"inputs": [{**BINARY_INPUT, "datatype": "FP32"}]},
                                             bytes(784))),
    ("size not an int", binary_body({"inputs": [{**BINARY_INPUT, "parameters": {
        "binary_data_size": MARK}}]}, bytes(784))),
    ("blob without a size", binary_body({"inputs": [{**BINARY_INPUT, "parameters": {}}]},
                                        bytes(784))),
    ("NaN in binary FP32", binary_body({"inputs": [{**BINARY_INPUT, "datatype": "FP32",
                                                    "parameters": {"binary_data_size": 3136}}]},
                                       np.full(784, np.nan, "<f4").tobytes())),
    ("binary_data_output not a bool", binary_body({"inputs": [BINARY_INPUT], "parameters": {
        "binary_data_output": MARK}}, bytes(784))),
]


@pytest.mark.parametrize("what, request_", BAD_BINARY, ids=[b[0] for b in BAD_BINARY])
def test_bad_binary_requests(client: TestClient, what: str,
                             request_: tuple[bytes, dict[str, str | bytes]]) -> None:
    body, headers = request_
    check_error(client.post(INFER, content=body, headers=headers), 400)


def check_error(r: Any, status: int) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    assert MARK not in r.text and MARK.lower() not in r.text.lower()


@pytest.mark.parametrize("what, body, status", BAD_INFER, ids=[b[0] for b in BAD_INFER])
def test_bad_inference_requests(client: TestClient, what: str, body: Any, status: int) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = client.post(INFER, content=content, headers={"content-type": "application/json"})
    check_error(r, status)


def test_a_body_over_the_limit_is_413(client: TestClient) -> None:
    big = b'{"inputs": [' + b" " * (9 * 1024 * 1024) + b"]}"
    check_error(client.post(INFER, content=big), 413)
    check_error(client.post("/v1/predict", content=big,
                            headers={"content-type": "application/json"}), 413)


BAD_PREDICT: list[tuple[str, dict[str, Any], int]] = [
    ("empty", {"content": b"", "headers": {"content-type": "application/json"}}, 400),
    ("malformed JSON", {"content": b"{" + MARK.encode(),
                        "headers": {"content-type": "application/json"}}, 400),
    ("neither pixels nor image", {"json": {}}, 400),
    ("both", {"json": {"pixels": [0] * 784, "image": "AAAA"}}, 400),
    ("unknown key", {"json": {"pixels": [0] * 784, MARK: 1}}, 400),
    ("783 pixels", {"json": {"pixels": [0] * 783}}, 400),
    ("27 rows", {"json": {"pixels": [[0] * 28] * 27}}, 400),
    ("ragged rows", {"json": {"pixels": [[0] * 28] * 27 + [[0] * 3]}}, 400),
    ("pixel 256", {"json": {"pixels": [256] * 784}}, 400),
    ("negative pixel", {"json": {"pixels": [-1] * 784}}, 400),
    ("string pixels", {"json": {"pixels": [MARK] * 784}}, 400),
    ("overflowing pixels", {"content": b'{"pixels": [' + b"1e999," * 783 + b"1]}",
                            "headers": {"content-type": "application/json"}}, 400),
    ("image not base64", {"json": {"image": MARK + "!!"}}, 400),
    ("data URL not base64", {"json": {"image": "data:image/png," + MARK}}, 400),
    ("image not an image", {"json": {"image": base64.b64encode(MARK.encode() * 10).decode()}},
     400),
    ("GIF image", {"json": {"image": base64.b64encode(b"GIF89a" + b"\0" * 40).decode()}}, 400),
    ("truncated PNG", {"json": {"image": base64.b64encode(
        png(np.full((40, 40), 255, np.uint8))[:60]).decode()}}, 400),
    ("blank image", {"json": {"image": base64.b64encode(
        png(np.full((40, 40), 255, np.uint8))).decode()}}, 400),
    ("bomb PNG (header 100k x 100k)", {"json": {"image": base64.b64encode(
        png_header_only(100_000, 100_000)).decode()}}, 413),
    ("bomb PNG raw body", {"content": png_header_only(50_000, 50_000),
                           "headers": {"content-type": "image/png"}}, 413),
    ("bomb PNG upload", {"files": {"image": ("x.png", png_header_only(9000, 9000))}}, 413),
    ("upload not an image", {"files": {"image": ("x.png", MARK.encode())}}, 400),
    ("upload under another name", {"files": {MARK: ("x.png", png(np.zeros((8, 8), np.uint8)))}},
     400),
    ("text/html", {"content": MARK.encode(), "headers": {"content-type": "text/html"}}, 415),
]


@pytest.mark.parametrize("what, kwargs, status", BAD_PREDICT, ids=[b[0] for b in BAD_PREDICT])
def test_bad_predict_requests(client: TestClient, what: str, kwargs: dict[str, Any],
                              status: int) -> None:
    check_error(client.post("/v1/predict", **kwargs), status)


def test_the_server_still_answers_after_all_that(client: TestClient) -> None:
    r = client.post("/v1/predict", json={"pixels": [0] * 784})
    assert r.status_code == 200 and len(r.json()["probabilities"]) == 10
    assert client.get("/v2/health/ready").status_code == 200


def test_a_request_larger_than_the_queue_can_hold_is_413(model_path) -> None:
    """It could never be queued: 413 says so (a 503 would have the client retry forever).
    The queue's own 503 for a full queue is in test_batcher."""
    config = ServeConfig(batching=BatchConfig(max_queue=2), limits=Limits(max_items=2))
    with TestClient(create_app(model_path, "mnist", config)) as c:
        body = {"inputs": [{"name": "input", "shape": [3, 784], "datatype": "UINT8",
                            "data": [0] * 2352}]}
        r = c.post(INFER, json=body)
        check_error(r, 413)
        assert "at most 2" in r.json()["error"] and "retry-after" not in r.headers
