"""The friendly API under `/v1`: `POST /v1/predict` (one digit from JSON pixels or an
image) and `GET /v1/model` (what model answers).

Pixels (784 values, or 28 rows of 28, 0..255, bright ink on black) are used as given;
a PNG or JPEG (base64 or a data: URL in JSON, a multipart part named `image`, or the
raw body) is prepared the way MNIST was (`serve.preprocess`) by the decode pool's
worker processes (`serve.decoding`), which answers 503 when they are all busy.
"""

import base64
import binascii

import msgspec
import numpy as np
from litestar import Controller, get, post
from multipart import (
    MultipartSegment,
    ParserError,
    ParserLimitReached,
    PushMultipartParser,
)

from serve import openapi, preprocess
from serve.config import Limits
from serve.decoding import DecodePool
from serve.errors import AnyRequest, ApiError, bad_request
from serve.service import ServiceDep

__all__ = [
    "MAX_FORM_PARTS", "FriendlyController", "ModelInfo", "PredictRequest",
    "PredictResponse", "form_image", "predict_input",
]


class PredictRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    pixels: msgspec.Raw = msgspec.Raw(b"")  # empty: absent (msgspec decodes Raw | None as null)
    image: str | None = None
    show_input: bool = False


class PredictResponse(msgspec.Struct, frozen=True, omit_defaults=True):
    digit: int
    probabilities: list[float]
    model_name: str
    model_version: str
    input: list[int] | None = None  # the 28x28 input the model saw, 0..255, if asked


class ModelInfo(msgspec.Struct, frozen=True):
    name: str
    version: str
    study: str
    question: str
    arm: str
    seed: int
    selected_on: str
    metrics: dict[str, float | None]
    labels: list[str]


class FriendlyController(Controller):
    path = "/v1"
    tags = ["Friendly"]

    @post("/predict", summary="Predict one digit", status_code=200,
          operation_class=openapi.PredictOperation,
          responses=openapi.errors(400, 413, 415, 503))
    async def predict(self, request: AnyRequest, service: ServiceDep) -> PredictResponse:
        """One digit: JSON pixels (used as given), or a PNG/JPEG (JSON base64, a
        multipart upload, or the raw body) prepared the way MNIST was."""
        served = service.served
        x, show = await predict_input(request, service.config.limits, service.decodes)
        probs = (await service.batcher.infer(x[None, :]))[0]
        return PredictResponse(
            digit=int(probs.argmax()), probabilities=probs.tolist(), model_name=served.name,
            model_version=served.version,
            input=np.rint(x * 255).astype(np.uint8).tolist() if show else None)

    @get("/model", summary="What model this is")
    async def model_info(self, service: ServiceDep) -> ModelInfo:
        served = service.served
        card, prov = served.card, served.card.provenance
        return ModelInfo(name=served.name, version=served.version, study=prov.study,
                         question=prov.question, arm=prov.arm, seed=prov.seed,
                         selected_on=prov.selected_on, metrics=prov.metrics,
                         labels=card.labels)


async def predict_input(request: AnyRequest, limits: Limits, decodes: DecodePool
                        ) -> tuple[np.ndarray, bool]:
    """The (784,) float32 input of a /v1/predict request, and whether to show it."""
    kind, options = request.content_type
    kind = kind.lower()
    if kind in ("multipart/form-data", "image/png", "image/jpeg"):
        decodes.check()
    if kind == "multipart/form-data":
        data = form_image(await request.body(), options.get("boundary"))
        return await decodes.prepare(data), False
    if kind in ("image/png", "image/jpeg"):
        return await decodes.prepare(await request.body()), False
    if kind != "application/json":  # not text/plain: a foreign page may send that unasked
        raise ApiError(415, "send Content-Type: application/json, multipart/form-data, "
                       "image/png or image/jpeg")
    body = await request.body()
    if not body.strip():
        raise bad_request('empty body: send {"pixels": [...]} or {"image": "<base64>"}')
    if body.count(b",") > _MAX_COMMAS:  # before decoding: each value costs ~32 bytes
        raise bad_request(_PIXELS_SHAPE)
    try:
        req = msgspec.json.decode(body, type=PredictRequest)
    except msgspec.ValidationError as e:
        if "unknown field" in str(e):  # msgspec would quote the client's key
            raise bad_request("unknown field: a predict request has only 'pixels', 'image' "
                              "and 'show_input'") from None
        raise bad_request(f"not a predict request: {e}") from None
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        raise bad_request("malformed JSON: the body must be one JSON object") from None
    pixels = bytes(req.pixels)
    if (not pixels or pixels == b"null") == (req.image is None):
        raise bad_request("send exactly one of 'pixels' and 'image'")
    if req.image is None:
        return preprocess.pixels_input(_pixels(pixels)), req.show_input
    data = _base64(req.image)
    return await decodes.prepare(data), req.show_input


_PIXELS_SHAPE = "pixels must be 784 numbers or 28 rows of 28"
_PIXEL_COMMAS = 783  # 784 values flat, or 28 rows of 28 (28 * 27 + 27)
_MAX_COMMAS = _PIXEL_COMMAS + 2 + 1  # and those between the fields, and a data: URL's
_FLAT_PIXELS = msgspec.json.Decoder(list[float])
_PIXEL_ROWS = msgspec.json.Decoder(list[list[float]])
MAX_FORM_PARTS = 16


def form_image(body: bytes, boundary: str | None) -> bytes:
    """The bytes of the part named `image` of a multipart/form-data body: a file or a
    plain field (`curl -F image=<digit.png` sends the file as a field), whatever its
    filename, content type or charset say. Other parts are skipped unread."""
    if not boundary:
        raise bad_request("multipart form without a boundary in its Content-Type")
    image: bytearray | None = None
    found = 0
    current: bytearray | None = None
    try:
        with PushMultipartParser(boundary.encode("latin-1"), max_segment_count=MAX_FORM_PARTS,
                                 max_header_size=4096, max_header_count=8) as parser:
            for chunk in (body, b""):  # b"": the end of the input
                for part in parser.parse(chunk):
                    if isinstance(part, MultipartSegment):
                        current = None
                        if part.name == "image":
                            found += 1
                            current = image = bytearray()
                    elif part and current is not None:
                        current += part
            if not parser.closed:
                raise ParserError("truncated")
    except (ParserError, ParserLimitReached, UnicodeError):
        raise bad_request("malformed multipart form: send the picture as a file field "
                          "named 'image' (curl -F image=@digit.png)") from None
    if found != 1 or image is None:
        raise bad_request("multipart form: send the picture as one file field named 'image' "
                          "(curl -F image=@digit.png)")
    return bytes(image)


def _pixels(raw: bytes) -> np.ndarray:
    for decoder in (_FLAT_PIXELS, _PIXEL_ROWS):
        try:
            values = decoder.decode(raw)
        except msgspec.ValidationError:
            continue
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            break
        try:
            return np.asarray(values, dtype=np.float64)
        except ValueError:
            break
    raise bad_request(_PIXELS_SHAPE)


def _base64(text: str) -> bytes:
    if text.startswith("data:"):
        head, _, text = text.partition(",")
        if not head.endswith(";base64"):
            raise bad_request("image: a data: URL must be base64-encoded")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request("image: not valid base64") from None
