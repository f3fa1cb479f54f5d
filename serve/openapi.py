"""OpenAPI documentation of the request bodies the handlers parse themselves.

The inference and predict handlers read the raw body (to parse it strictly, bounded,
with messages that never quote the input), so Litestar cannot infer their request
schemas; these operation classes state them. Responses are documented from the
handlers' return types and `ERRORS`.
"""

from dataclasses import dataclass

from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)

from serve.errors import Error
from serve.protocol import DATATYPES, INPUT, OUTPUTS

__all__ = [
    "BINARY", "INFER_REQUEST", "PREDICT_FORM", "PREDICT_JSON", "InferOperation",
    "PredictOperation", "errors",
]

_STR, _INT, _NUM = (Schema(type=OpenAPIType.STRING), Schema(type=OpenAPIType.INTEGER),
                    Schema(type=OpenAPIType.NUMBER))
_OBJ = Schema(type=OpenAPIType.OBJECT)
_ONE = [0] * 784  # a blank image, as an example (a real digit is 784 values too)

INFER_REQUEST = Schema(
    type=OpenAPIType.OBJECT, required=["inputs"],
    description="Open Inference Protocol inference request. One input, 'input': FP32 "
    "pixels/255 in [0, 1] or UINT8 pixels 0..255; shape [N, 784], [N, 28, 28] or "
    "[N, 1, 28, 28]; data flat (row-major) or nested as the shape says.",
    properties={
        "id": Schema(type=OpenAPIType.STRING, max_length=256),
        "parameters": _OBJ,
        "inputs": Schema(type=OpenAPIType.ARRAY, min_items=1, max_items=1, items=Schema(
            type=OpenAPIType.OBJECT, required=["name", "shape", "datatype", "data"],
            properties={
                "name": Schema(type=OpenAPIType.STRING, enum=[INPUT]),
                "shape": Schema(type=OpenAPIType.ARRAY, items=_INT, min_items=2, max_items=4),
                "datatype": Schema(type=OpenAPIType.STRING, enum=list(DATATYPES)),
                "parameters": _OBJ,
                "data": Schema(type=OpenAPIType.ARRAY, items=Schema(one_of=[
                    _NUM, Schema(type=OpenAPIType.ARRAY, items=_NUM)])),
            })),
        "outputs": Schema(type=OpenAPIType.ARRAY, items=Schema(
            type=OpenAPIType.OBJECT, required=["name"],
            properties={"name": Schema(type=OpenAPIType.STRING, enum=list(OUTPUTS)),
                        "parameters": _OBJ})),
    },
    examples=[{"id": "42", "inputs": [{"name": INPUT, "shape": [1, 784], "datatype": "UINT8",
                                       "data": _ONE}]}],
)

PREDICT_JSON = Schema(
    type=OpenAPIType.OBJECT,
    description="Exactly one of 'pixels' (784 values, or 28 rows of 28, 0..255, bright "
    "ink on black as in MNIST, used as given) or 'image' (a PNG or JPEG, base64 or a "
    "data: URL, prepared MNIST-style). 'show_input' adds the 28x28 input the model saw.",
    properties={
        "pixels": Schema(type=OpenAPIType.ARRAY, items=Schema(one_of=[
            _NUM, Schema(type=OpenAPIType.ARRAY, items=_NUM)])),
        "image": Schema(type=OpenAPIType.STRING),
        "show_input": Schema(type=OpenAPIType.BOOLEAN),
    },
    examples=[{"pixels": _ONE}],
)

PREDICT_FORM = Schema(
    type=OpenAPIType.OBJECT, required=["image"],
    properties={"image": Schema(type=OpenAPIType.STRING, format=None,
                                content_media_type="application/octet-stream",
                                description="A PNG or JPEG photo or drawing of one digit.")},
)


BINARY = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY, description=(
    "Binary tensor data extension: the first Inference-Header-Content-Length bytes are "
    "the JSON object, raw little-endian tensors follow."))


@dataclass
class InferOperation(Operation):
    def __post_init__(self) -> None:
        self.request_body = RequestBody(required=True, content={
            "application/json": OpenAPIMediaType(schema=INFER_REQUEST),
            "application/octet-stream": OpenAPIMediaType(schema=BINARY)})
        ok = (self.responses or {}).get("200")
        if isinstance(ok, OpenAPIResponse) and ok.content is not None:
            ok.content["application/octet-stream"] = OpenAPIMediaType(schema=BINARY)


@dataclass
class PredictOperation(Operation):
    def __post_init__(self) -> None:
        self.request_body = RequestBody(required=True, content={
            "application/json": OpenAPIMediaType(schema=PREDICT_JSON),
            "multipart/form-data": OpenAPIMediaType(schema=PREDICT_FORM),
        })


def errors(*statuses: int) -> dict[int, ResponseSpec]:
    """`responses=` for a route: each status answers `{"error": "..."}`."""
    words = {400: "Bad request", 404: "No such model or version", 405: "Method not allowed",
             413: "Too large", 415: "Unsupported media type",
             503: "Not ready, or busy: retry after the Retry-After header's seconds"}
    return {s: ResponseSpec(data_container=Error, description=words[s], generate_examples=False)
            for s in statuses}
