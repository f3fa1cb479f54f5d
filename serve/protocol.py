"""The Open Inference Protocol (KServe V2) REST messages for the MNIST model.

One input, `input`: FP32 pixels in [0, 1] or UINT8 pixels 0..255, shaped [N, 784],
[N, 28, 28] or [N, 1, 28, 28], its data flat (row-major) or nested as the shape says.
Two outputs: `probabilities` FP32 [N, 10] and `label` INT64 [N]. Parsing is strict and
bounded, and its error messages never quote the request.
"""

from dataclasses import dataclass
from functools import cache
from typing import Any, cast

import msgspec
import numpy as np

from serve.errors import ApiError, bad_request, too_large

INPUT = "input"
OUTPUTS = ("probabilities", "label")
SHAPES = ((784,), (28, 28), (1, 28, 28))  # accepted shapes after the batch dimension
DATATYPES = ("FP32", "UINT8")
MAX_ID = 256  # characters in a request id (it is echoed, so it is bounded)
_MAX_BYTES_PER_VALUE = 40  # generous: "0.12345678901234567e-05, " is 25


class Tensor(msgspec.Struct, frozen=True):
    name: str
    datatype: str
    shape: list[int]


class ServerMetadata(msgspec.Struct, frozen=True):
    name: str
    version: str
    extensions: list[str]


class ModelMetadata(msgspec.Struct, frozen=True):
    name: str
    versions: list[str]
    platform: str
    inputs: list[Tensor]
    outputs: list[Tensor]


class Live(msgspec.Struct, frozen=True):
    live: bool


class Ready(msgspec.Struct, frozen=True):
    # The specification's text gives the server-ready object the key "live" (a slip
    # for "ready"); both are sent so that clients reading either work.
    ready: bool
    live: bool


class ModelReady(msgspec.Struct, frozen=True):
    name: str
    ready: bool


class RequestInput(msgspec.Struct, frozen=True):
    name: str
    shape: list[int]
    datatype: str
    data: msgspec.Raw  # decoded once the shape and datatype are known
    parameters: dict[str, Any] | None = None


class RequestOutput(msgspec.Struct, frozen=True):
    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequest(msgspec.Struct, frozen=True):
    inputs: list[RequestInput]
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[RequestOutput] | None = None


class ResponseOutput(msgspec.Struct, frozen=True):
    name: str
    shape: list[int]
    datatype: str
    data: list[float]  # row-major, flattened (INT64 outputs hold ints: JSON numbers too)


class InferenceResponse(msgspec.Struct, frozen=True, omit_defaults=True):
    model_name: str
    outputs: list[ResponseOutput]
    model_version: str | None = None
    id: str | None = None


class Error(msgspec.Struct, frozen=True):
    error: str


def model_metadata(name: str, version: str) -> ModelMetadata:
    return ModelMetadata(
        name=name, versions=[version], platform="pytorch",
        inputs=[Tensor(INPUT, "FP32", [-1, 784])],
        outputs=[Tensor("probabilities", "FP32", [-1, 10]), Tensor("label", "INT64", [-1])])


@dataclass(frozen=True)
class Inference:
    """A parsed request: pixels (N, 784) float32 in [0, 1] and what to answer."""

    id: str | None
    x: np.ndarray
    outputs: tuple[str, ...]


_request_decoder = msgspec.json.Decoder(InferenceRequest)


def parse_request(body: bytes, max_items: int) -> Inference:
    """Decode and validate an inference request body."""
    if not body.strip():
        raise bad_request("empty body: send an inference request JSON object "
                          '{"inputs": [{"name": "input", ...}]}')
    try:
        request = _request_decoder.decode(body)
    except msgspec.ValidationError as e:
        raise bad_request(f"not an inference request: {e}") from None
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        raise bad_request("malformed JSON: the body must be one JSON object, nested at "
                          "most a few levels deep") from None
    if request.id is not None and len(request.id) > MAX_ID:
        raise bad_request(f"id is longer than {MAX_ID} characters")
    if len(request.inputs) != 1:
        raise bad_request(f"this model takes exactly one input, named {INPUT!r}")
    x = parse_input(request.inputs[0], max_items)
    outputs: tuple[str, ...] = OUTPUTS
    if request.outputs is not None:
        names = [o.name for o in request.outputs]
        if not names or any(n not in OUTPUTS for n in names) or len(set(names)) != len(names):
            raise bad_request("outputs: request each of 'probabilities' and 'label' at most "
                              "once, or leave outputs out for both")
        outputs = tuple(names)
    return Inference(request.id, x, outputs)


def parse_input(tensor: RequestInput, max_items: int) -> np.ndarray:
    """The input tensor -> (N, 784) float32 pixels in [0, 1]."""
    if tensor.name != INPUT:
        raise bad_request(f"unknown input name: this model's input is named {INPUT!r}")
    if tensor.datatype not in DATATYPES:
        raise bad_request("datatype must be FP32 (pixels / 255, in [0, 1]) or "
                          "UINT8 (pixels 0..255)")
    shape = tuple(tensor.shape)
    if len(shape) < 2 or shape[1:] not in SHAPES:
        raise bad_request("shape must be [N, 784], [N, 28, 28] or [N, 1, 28, 28]")
    n = shape[0]
    if n < 1:
        raise bad_request("shape: the batch size N must be at least 1")
    if n > max_items:
        raise too_large(f"too many images: at most {max_items} per request; split the batch")
    raw = bytes(tensor.data)
    if len(raw) > n * 784 * _MAX_BYTES_PER_VALUE + 1024:
        raise bad_request("data is far longer than the shape says")
    x = _decode_data(raw, tensor.datatype, len(shape), n * 784)
    if x.shape != shape and x.shape != (n * 784,):
        raise bad_request("data does not match the shape: give N*784 values, flat or "
                          "nested as the shape says")
    x = x.reshape(n, 784)
    if tensor.datatype == "UINT8":
        if x.min() < 0 or x.max() > 255:
            raise bad_request("UINT8 values must be integers 0..255")
        return x.astype(np.float32) / np.float32(255.0)
    if not np.isfinite(x).all():
        raise bad_request("FP32 values must be finite numbers")
    if x.min() < 0.0 or x.max() > 1.0:
        raise bad_request("FP32 values must lie in [0, 1]: divide 0..255 pixels by 255, "
                          "or send them as UINT8")
    return x.astype(np.float32)


def _decode_data(raw: bytes, datatype: str, depth: int, size: int) -> np.ndarray:
    """JSON data -> an array, flat or nested `depth` deep; numbers only (no strings or
    booleans, which NumPy would otherwise coerce)."""
    element = float if datatype == "FP32" else int
    for d in (1, depth):
        try:
            values = _decoder(element, d).decode(raw)
        except msgspec.ValidationError:
            continue
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            raise bad_request("malformed JSON in data") from None
        try:
            # float64 first: range checks before the cast, so 1e39 is refused, not inf
            return np.asarray(values, dtype=np.float64 if datatype == "FP32" else np.int64)
        except (ValueError, OverflowError):
            raise bad_request("data is ragged or out of range: nested lists must match the "
                              "shape") from None
    kind = "numbers" if datatype == "FP32" else "integers"
    raise bad_request(f"data must be a list of {size} {kind}, flat or nested as the shape says")


@cache
def _decoder(element: type, depth: int) -> msgspec.json.Decoder:
    kind: Any = element
    for _ in range(depth):
        kind = list[kind]
    return msgspec.json.Decoder(kind)


def response(name: str, version: str, request: Inference, probs: np.ndarray
             ) -> InferenceResponse:
    """probs: (N, 10) float32 -> the response with the requested outputs."""
    n = len(probs)
    outputs = []
    for out in request.outputs:
        if out == "probabilities":
            outputs.append(ResponseOutput("probabilities", [n, 10], "FP32",
                                          probs.ravel().tolist()))
        else:
            labels = cast(list[float], probs.argmax(axis=1).tolist())  # ints, encoded as such
            outputs.append(ResponseOutput("label", [n], "INT64", labels))
    return InferenceResponse(model_name=name, outputs=outputs, model_version=version,
                             id=request.id)


def error(exc: ApiError) -> Error:
    return Error(exc.message)
