"""The friendly API under `/v1`: `POST /v1/predict` (one digit from JSON pixels or an
image) and `GET /v1/model` (what model answers).

Pixels (784 values, or 28 rows of 28, 0..255, bright ink on black) are used as given;
a PNG or JPEG (base64 or a data: URL in JSON, a multipart upload named `image`, or the
raw body) is prepared the way MNIST was (`serve.preprocess`) on the decode pool's
workers (`serve.decoding`), which answers 503 when they are all busy.
"""

import base64
import binascii

import msgspec
import numpy as np
from litestar import Controller, get, post
from litestar.datastructures import UploadFile
from litestar.exceptions import HTTPException

from serve import openapi, preprocess
from serve.config import Limits
from serve.decoding import DecodePool
from serve.errors import AnyRequest, ApiError, bad_request
from serve.service import ServiceDep


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
    kind = request.content_type[0].lower()
    if kind in ("multipart/form-data", "image/png", "image/jpeg"):
        decodes.check()
    if kind == "multipart/form-data":
        try:
            form = await request.form()
        except HTTPException as e:
            if e.status_code == 413:
                raise
            raise bad_request("malformed multipart form") from None
        upload = form.get("image")
        if not isinstance(upload, UploadFile):
            raise bad_request("multipart form: send the picture as a file field named 'image'")
        data = await upload.read()
        return await decodes.run(preprocess.prepare_image, data, limits), False
    if kind in ("image/png", "image/jpeg"):
        data = await request.body()
        return await decodes.run(preprocess.prepare_image, data, limits), False
    if kind != "application/json":  # not text/plain: a foreign page may send that unasked
        raise ApiError(415, "send Content-Type: application/json, multipart/form-data, "
                       "image/png or image/jpeg")
    body = await request.body()
    if not body.strip():
        raise bad_request('empty body: send {"pixels": [...]} or {"image": "<base64>"}')
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
    return await decodes.run(preprocess.prepare_image, data, limits), req.show_input


_FLAT_PIXELS = msgspec.json.Decoder(list[float])
_PIXEL_ROWS = msgspec.json.Decoder(list[list[float]])


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
    raise bad_request("pixels must be 784 numbers or 28 rows of 28")


def _base64(text: str) -> bytes:
    if text.startswith("data:"):
        head, _, text = text.partition(",")
        if not head.endswith(";base64"):
            raise bad_request("image: a data: URL must be base64-encoded")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request("image: not valid base64") from None
