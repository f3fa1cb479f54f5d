"""The Open Inference Protocol (KServe V2) REST messages for the MNIST model.

One input, `input`: FP32 pixels in [0, 1] or UINT8 pixels 0..255, shaped [N, 784],
[N, 28, 28] or [N, 1, 28, 28], its data flat (row-major) or nested as the shape says.
Two outputs: `probabilities` FP32 [N, 10] and `label` INT64 [N]. Parsing is strict and
bounded, and its error messages never quote the request.

Also the binary tensor data extension (as Triton and its `tritonclient` speak it, by
default): a request whose `Inference-Header-Content-Length` header says how many bytes
of the body are JSON carries each input with `parameters.binary_data_size` as raw
little-endian bytes after the JSON; outputs asked for with `binary_data: true` (or all,
with the request parameter `binary_data_output: true`, unless an output says
`binary_data: false`) come back the same way.
"""

from dataclasses import dataclass
from functools import cache
from typing import Any

import msgspec
import numpy as np

from serve.errors import bad_request, too_large

__all__ = [
    "BINARY_DTYPES", "DATATYPES", "EXTENSIONS", "HEADER_LENGTH", "INPUT", "MAX_ID",
    "OUTPUTS", "SHAPES", "Inference", "InferenceRequest", "InferenceResponse", "Live",
    "ModelMetadata", "ModelReady", "Ready", "RequestInput", "RequestOutput",
    "ResponseOutput", "ServerMetadata", "Tensor", "model_metadata", "parse_input",
    "parse_request", "response",
]

INPUT = "input"
OUTPUTS = ("probabilities", "label")
SHAPES = ((784,), (28, 28), (1, 28, 28))  # accepted shapes after the batch dimension
DATATYPES = ("FP32", "UINT8")
BINARY_DTYPES: dict[str, np.dtype] = {"FP32": np.dtype("<f4"), "UINT8": np.dtype("u1")}
HEADER_LENGTH = "Inference-Header-Content-Length"
EXTENSIONS = ["binary_tensor_data"]
MAX_ID = 256  # characters in a request id (it is echoed, so it is bounded)
_MAX_BYTES_PER_VALUE = 40  # generous: "0.12345678901234567e-05, " is 25
_SPARE_COMMAS = 1024  # besides the data's: between fields, outputs, parameters
_MAX_LENGTH_DIGITS = 10  # of Inference-Header-Content-Length: bodies are far below 10**10


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
    data: msgspec.Raw = msgspec.Raw(b"")  # decoded once the shape and datatype are known;
    #                                       empty when the tensor travels as binary
    parameters: dict[str, Any] | None = None


class RequestOutput(msgspec.Struct, frozen=True):
    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequest(msgspec.Struct, frozen=True):
    inputs: list[RequestInput]
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[RequestOutput] | None = None


class ResponseOutput(msgspec.Struct, frozen=True, omit_defaults=True):
    name: str
    shape: list[int]
    datatype: str
    data: list[float] | None = None  # row-major, flattened (INT64 data are ints); None
    #                                  when the tensor follows the JSON as binary
    parameters: dict[str, int] | None = None  # {"binary_data_size": bytes} then


class InferenceResponse(msgspec.Struct, frozen=True, omit_defaults=True):
    model_name: str
    outputs: list[ResponseOutput]
    model_version: str | None = None
    id: str | None = None


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
    binary: frozenset[str] = frozenset()  # outputs to send as binary


_request_decoder = msgspec.json.Decoder(InferenceRequest)


def parse_request(body: bytes, max_items: int, header_length: str | None = None
                  ) -> Inference:
    """Decode and validate an inference request body (`header_length`: the value of
    the Inference-Header-Content-Length header, if any)."""
    binary = b""
    if header_length is not None:
        json_size = _json_size(header_length, len(body))
        body, binary = body[:json_size], body[json_size:]
    if not body.strip():
        raise bad_request("empty body: send an inference request JSON object "
                          '{"inputs": [{"name": "input", ...}]}')
    # Before decoding: every JSON value costs 8 to 64 bytes decoded, and a value takes
    # as little as 2 bytes of text. A request of max_items images has N*784 values and
    # a few dozen more; the commas between them bound the count.
    if body.count(b",") > max_items * 784 + _SPARE_COMMAS:
        raise too_large(f"too many values: a request holds at most {max_items} images of "
                        "784 values; split the batch")
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
    x = parse_input(request.inputs[0], max_items, binary)
    outputs: tuple[str, ...] = OUTPUTS
    all_binary = _flag(request.parameters, "binary_data_output")
    as_binary = set(OUTPUTS) if all_binary else set()
    if request.outputs is not None:
        names = [o.name for o in request.outputs]
        if not names or any(n not in OUTPUTS for n in names) or len(set(names)) != len(names):
            raise bad_request("outputs: request each of 'probabilities' and 'label' at most "
                              "once, or leave outputs out for both")
        outputs = tuple(names)
        for o in request.outputs:  # an output's own binary_data wins, either way
            if o.parameters is not None and "binary_data" in o.parameters:
                if _flag(o.parameters, "binary_data"):
                    as_binary.add(o.name)
                else:
                    as_binary.discard(o.name)
    return Inference(request.id, x, outputs, frozenset(as_binary))


def _json_size(header_length: str, body_size: int) -> int:
    """The value of Inference-Header-Content-Length: 1 to 10 ASCII digits (`isdigit`
    and `int` alone would take '\u00b2', other scripts' digits and thousands of digits),
    at most the body's size."""
    if (0 < len(header_length) <= _MAX_LENGTH_DIGITS and header_length.isascii()
            and header_length.isdigit() and 0 < int(header_length) <= body_size):
        return int(header_length)
    raise bad_request(f"{HEADER_LENGTH} must be the byte length of the JSON part of the "
                      "body, in decimal digits")


def _flag(parameters: dict[str, Any] | None, key: str) -> bool:
    value = (parameters or {}).get(key, False)
    if not isinstance(value, bool):
        raise bad_request(f"parameter {key!r} must be true or false")
    return value


def parse_input(tensor: RequestInput, max_items: int, binary: bytes = b"") -> np.ndarray:
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
    size = (tensor.parameters or {}).get("binary_data_size")
    if size is not None or binary:
        x = _binary_data(size, binary, tensor.datatype, n * 784)
    else:
        raw = bytes(tensor.data)
        if not raw:
            raise bad_request("the input has no data")
        if len(raw) > n * 784 * _MAX_BYTES_PER_VALUE + 1024:
            raise bad_request("data is far longer than the shape says")
        if raw.count(b",") > _commas(shape):  # more values than the shape: never decoded
            raise bad_request(_DATA_SHAPE)
        x = _decode_data(raw, tensor.datatype, len(shape), n * 784)
        if x.shape != shape and x.shape != (n * 784,):
            raise bad_request(_DATA_SHAPE)
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


_DATA_SHAPE = ("data does not match the shape: give N*784 values, flat or nested as the "
               "shape says")


def _commas(shape: tuple[int, ...]) -> int:
    """The commas in `data` nested as `shape` says: each list of k items has k - 1 (flat
    data has fewer). More commas mean more values than the shape holds."""
    commas, lists = 0, 1
    for size in shape:
        commas += lists * (size - 1)
        lists *= size
    return commas


def _binary_data(size: object, binary: bytes, datatype: str, count: int) -> np.ndarray:
    """The input's raw bytes (binary tensor data extension) -> a flat array."""
    dtype = BINARY_DTYPES[datatype]
    if size is None:
        raise bad_request("binary data after the JSON, but the input has no "
                          "parameters.binary_data_size")
    if (not isinstance(size, int) or isinstance(size, bool) or size != count * dtype.itemsize
            or len(binary) != size):
        raise bad_request(f"binary_data_size must be N*784*{dtype.itemsize} bytes for "
                          f"{datatype}, and the binary part of the body exactly that long")
    values = np.frombuffer(binary, dtype=dtype)
    return values.astype(np.float64) if datatype == "FP32" else values.astype(np.int64)


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
def _decoder(element: type, depth: int) -> msgspec.json.Decoder[Any]:
    kind: Any = element
    for _ in range(depth):
        kind = list[kind]
    return msgspec.json.Decoder(kind)


def response(name: str, version: str, request: Inference, probs: np.ndarray
             ) -> tuple[bytes, dict[str, str]]:
    """probs: (N, 10) float32 -> the response body with the requested outputs, and its
    headers (Inference-Header-Content-Length when binary outputs follow the JSON)."""
    n = len(probs)
    tensors = {"probabilities": ("FP32", [n, 10], probs.astype("<f4")),
               "label": ("INT64", [n], probs.argmax(axis=1).astype("<i8"))}
    outputs, blobs = [], []
    for out in request.outputs:
        datatype, shape, values = tensors[out]
        if out in request.binary:
            blob = values.tobytes()
            blobs.append(blob)
            outputs.append(ResponseOutput(out, shape, datatype,
                                          parameters={"binary_data_size": len(blob)}))
        else:
            outputs.append(ResponseOutput(out, shape, datatype, values.ravel().tolist()))
    head = msgspec.json.encode(InferenceResponse(model_name=name, outputs=outputs,
                                                 model_version=version, id=request.id))
    if not blobs:
        return head, {}
    return head + b"".join(blobs), {HEADER_LENGTH: str(len(head))}
