"""The Open Inference Protocol (KServe V2) REST routes, under `/v2`.

The messages and their strict parsing live in `serve.protocol`; these handlers check
the model name and version, hand the pixels to the batcher and shape the answer.
Versioned and unversioned routes share one implementation each.
"""

from importlib.metadata import version as package_version
from typing import Any

from litestar import Controller, HttpMethod, Response, get, post, route
from litestar.params import FromPath

from serve import openapi, protocol
from serve.errors import AnyRequest, ApiError
from serve.service import Service, ServiceDep

__all__ = ["HEALTH_METHODS", "SERVER_NAME", "SERVER_VERSION", "InferenceController"]

SERVER_NAME = "ablate-serve"
SERVER_VERSION = package_version("ablate")
_INFER_ERRORS = openapi.errors(400, 404, 413, 415, 503)
# JSON, the binary extension's type, or none at all (tritonclient.http sends none): a page
# of another site can send neither JSON nor octet-stream without the browser asking first.
_INFER_TYPES = ("application/json", "application/octet-stream", "")
HEALTH_METHODS = [HttpMethod.GET, HttpMethod.HEAD]  # load balancers probe with HEAD


def _health(ok: bool) -> int:
    """The status of a health answer: 503 tells a probe to stop sending (ready) or to
    restart the server (live)."""
    return 200 if ok else 503


def _model_ready(service: Service, model: str, version: str | None
                 ) -> Response[protocol.ModelReady]:
    service.served.check(model, version)
    ok = service.batcher.running
    return Response(protocol.ModelReady(service.served.name, ok), status_code=_health(ok))


async def _infer(request: AnyRequest, service: Service, model: str, version: str | None
                 ) -> Response[Any]:
    """The encoded `InferenceResponse` (which the handlers' annotations document),
    followed by the binary outputs when the request asked for them."""
    served = service.served
    served.check(model, version)
    if request.content_type[0].lower() not in _INFER_TYPES:
        raise ApiError(415, "send Content-Type: application/json (or application/octet-stream "
                       f"with an {protocol.HEADER_LENGTH} header for binary tensors)")
    parsed = protocol.parse_request(await request.body(), service.config.limits.max_items,
                                    request.headers.get(protocol.HEADER_LENGTH))
    probs = await service.batcher.infer(parsed.x)
    body, headers = protocol.response(served.name, served.version, parsed, probs)
    kind = "application/octet-stream" if headers else "application/json"
    return Response(body, headers=headers, media_type=kind)


class InferenceController(Controller):
    path = "/v2"
    tags = ["Open Inference Protocol"]

    @get("", summary="Server metadata")
    async def server_metadata(self) -> protocol.ServerMetadata:
        return protocol.ServerMetadata(SERVER_NAME, SERVER_VERSION, protocol.EXTENSIONS)

    @route("/health/live", http_method=HEALTH_METHODS, summary="Server live",
           responses=openapi.errors(503))
    async def live(self, service: ServiceDep) -> Response[protocol.Live]:
        ok = service.batcher.alive
        return Response(protocol.Live(live=ok), status_code=_health(ok))

    @route("/health/ready", http_method=HEALTH_METHODS, summary="Server ready",
           responses=openapi.errors(503))
    async def ready(self, service: ServiceDep) -> Response[protocol.Ready]:
        ok = service.batcher.running
        return Response(protocol.Ready(ready=ok, live=service.batcher.alive),
                        status_code=_health(ok))

    @get("/models/{model:str}", summary="Model metadata", responses=openapi.errors(404))
    async def model_metadata(self, service: ServiceDep, model: FromPath[str]
                             ) -> protocol.ModelMetadata:
        service.served.check(model)
        return protocol.model_metadata(service.served.name, service.served.version)

    @get("/models/{model:str}/versions/{model_version:str}", summary="Model version metadata",
         responses=openapi.errors(404))
    async def model_version_metadata(self, service: ServiceDep, model: FromPath[str],
                                     model_version: FromPath[str]) -> protocol.ModelMetadata:
        service.served.check(model, model_version)
        return protocol.model_metadata(service.served.name, service.served.version)

    @route("/models/{model:str}/ready", http_method=HEALTH_METHODS, summary="Model ready",
           responses=openapi.errors(404, 503))
    async def model_ready(self, service: ServiceDep, model: FromPath[str]
                          ) -> Response[protocol.ModelReady]:
        return _model_ready(service, model, None)

    @route("/models/{model:str}/versions/{model_version:str}/ready", http_method=HEALTH_METHODS,
           summary="Model version ready", responses=openapi.errors(404, 503))
    async def model_version_ready(self, service: ServiceDep, model: FromPath[str],
                                  model_version: FromPath[str]) -> Response[protocol.ModelReady]:
        return _model_ready(service, model, model_version)

    @post("/models/{model:str}/infer", summary="Infer", status_code=200,
          operation_class=openapi.InferOperation, responses=_INFER_ERRORS)
    async def model_infer(self, request: AnyRequest, service: ServiceDep, model: FromPath[str]
                          ) -> Response[protocol.InferenceResponse]:
        return await _infer(request, service, model, None)

    @post("/models/{model:str}/versions/{model_version:str}/infer",
          summary="Infer with a model version", status_code=200,
          operation_class=openapi.InferOperation, responses=_INFER_ERRORS)
    async def model_version_infer(self, request: AnyRequest, service: ServiceDep,
                                  model: FromPath[str], model_version: FromPath[str]
                                  ) -> Response[protocol.InferenceResponse]:
        return await _infer(request, service, model, model_version)
