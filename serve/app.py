"""The Litestar app: Open Inference Protocol, `/v1/predict`, the drawing page, metrics.

`create_app` loads and verifies the model before the app exists (a bad model never
serves); the batcher starts with the app and the service reports ready only then.
`run_server` is `ablate serve`: export on the fly from a run directory, then uvicorn.
"""

import gc
import logging
import os
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import msgspec
import numpy as np
import torch
from litestar import Litestar, Request, Response, get, post
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.params import FromPath
from litestar.static_files import create_static_files_router
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send

from ablate.errors import UserError
from serve import friendly, openapi, protocol
from serve.batcher import Batcher
from serve.config import ServeConfig, from_env
from serve.errors import ApiError
from serve.metrics import CONTENT_TYPE, Metrics
from serve.predictor import Predictor
from serve.protocol import Error

STATIC = Path(__file__).parent / "static"
SERVER_NAME, SERVER_VERSION = "ablate-serve", "0.1.0"
METHODS = frozenset({"GET", "POST", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"})
log = logging.getLogger("serve")

_STATUS_WORDS = {400: "bad request", 404: "not found", 405: "method not allowed",
                 413: "request body too large", 415: "unsupported media type",
                 500: "internal error"}


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


def create_app(model_path: Path, name: str = "mnist", config: ServeConfig | None = None
               ) -> Litestar:
    """An app serving the exported model at `model_path` as `name`.

    Raises `UserError` (via `ModelError`) when the model is missing, corrupt, tampered
    with or fails its self-test: nothing is served then."""
    config = config or ServeConfig()
    predictor = Predictor.load(model_path)
    metrics = Metrics()
    card = predictor.card
    metrics.model.labels(name, card.version, card.provenance.study, card.provenance.arm,
                         str(card.provenance.seed)).set(1)
    batcher = Batcher(predictor.predict, config.batching, metrics)
    limits = config.limits
    version = predictor.version
    page = (STATIC / "index.html").read_bytes()
    info = ModelInfo(name=name, version=version, study=card.provenance.study,
                     question=card.provenance.question, arm=card.provenance.arm,
                     seed=card.provenance.seed, selected_on=card.provenance.selected_on,
                     metrics=card.provenance.metrics, labels=card.labels)

    def check_model(model: str, model_version: str | None = None) -> None:
        # Never quote the client's name or version back.
        if model != name:
            raise ApiError(404, f"no such model; this server serves {name!r}")
        if model_version is not None and model_version != version:
            raise ApiError(404, f"no such version; model {name!r} has version {version!r}")

    @get("/", include_in_schema=False)
    async def index() -> Response[bytes]:
        return Response(page, media_type="text/html; charset=utf-8")

    @get("/v2", tags=["Open Inference Protocol"], summary="Server metadata")
    async def server_metadata() -> protocol.ServerMetadata:
        return protocol.ServerMetadata(SERVER_NAME, SERVER_VERSION, protocol.EXTENSIONS)

    @get("/v2/health/live", tags=["Open Inference Protocol"], summary="Server live")
    async def live() -> protocol.Live:
        return protocol.Live(live=True)

    @get("/v2/health/ready", tags=["Open Inference Protocol"], summary="Server ready",
         responses=openapi.errors(503))
    async def ready() -> Response[protocol.Ready]:
        ok = batcher.running
        return Response(protocol.Ready(ready=ok, live=True), status_code=200 if ok else 503)

    @get("/v2/models/{model:str}", tags=["Open Inference Protocol"], summary="Model metadata",
         responses=openapi.errors(404))
    async def model_metadata(model: FromPath[str]) -> protocol.ModelMetadata:
        check_model(model)
        return protocol.model_metadata(name, version)

    @get("/v2/models/{model:str}/versions/{model_version:str}",
         tags=["Open Inference Protocol"], summary="Model version metadata",
         responses=openapi.errors(404))
    async def model_version_metadata(model: FromPath[str], model_version: FromPath[str]
                                     ) -> protocol.ModelMetadata:
        check_model(model, model_version)
        return protocol.model_metadata(name, version)

    @get("/v2/models/{model:str}/ready", tags=["Open Inference Protocol"],
         summary="Model ready", responses=openapi.errors(404, 503))
    async def model_ready(model: FromPath[str]) -> Response[protocol.ModelReady]:
        check_model(model)
        ok = batcher.running
        return Response(protocol.ModelReady(name, ok), status_code=200 if ok else 503)

    @get("/v2/models/{model:str}/versions/{model_version:str}/ready",
         tags=["Open Inference Protocol"], summary="Model version ready",
         responses=openapi.errors(404, 503))
    async def model_version_ready(model: FromPath[str], model_version: FromPath[str]
                                  ) -> Response[protocol.ModelReady]:
        check_model(model, model_version)
        ok = batcher.running
        return Response(protocol.ModelReady(name, ok), status_code=200 if ok else 503)

    async def infer(request: Request, model: str, model_version: str | None
                    ) -> Response[protocol.InferenceResponse]:
        check_model(model, model_version)
        parsed = protocol.parse_request(await friendly.read_body(request), limits.max_items,
                                        request.headers.get(protocol.HEADER_LENGTH))
        probs = await batcher.infer(parsed.x)
        body, headers = protocol.response(name, version, parsed, probs)
        kind = "application/octet-stream" if headers else "application/json"
        return Response(body, headers=headers, media_type=kind)  # type: ignore[arg-type]

    infer_errors = openapi.errors(400, 404, 413, 503)

    @post("/v2/models/{model:str}/infer", tags=["Open Inference Protocol"], summary="Infer",
          status_code=200, operation_class=openapi.InferOperation, responses=infer_errors)
    async def model_infer(request: Request, model: FromPath[str]
                          ) -> Response[protocol.InferenceResponse]:
        return await infer(request, model, None)

    @post("/v2/models/{model:str}/versions/{model_version:str}/infer",
          tags=["Open Inference Protocol"], summary="Infer with a model version",
          status_code=200, operation_class=openapi.InferOperation, responses=infer_errors)
    async def model_version_infer(request: Request, model: FromPath[str],
                                  model_version: FromPath[str]
                                  ) -> Response[protocol.InferenceResponse]:
        return await infer(request, model, model_version)

    @post("/v1/predict", tags=["Friendly"], summary="Predict one digit", status_code=200,
          operation_class=openapi.PredictOperation,
          responses=openapi.errors(400, 413, 415, 503))
    async def predict(request: Request) -> friendly.PredictResponse:
        """One digit: JSON pixels (used as given), or a PNG/JPEG (JSON base64, a
        multipart upload, or the raw body) prepared the way MNIST was."""
        x, show = await friendly.predict_input(request, limits)
        probs = (await batcher.infer(x[None, :]))[0]
        return friendly.PredictResponse(
            digit=int(probs.argmax()), probabilities=probs.tolist(), model_name=name,
            model_version=version,
            input=np.rint(x * 255).astype(np.uint8).tolist() if show else None)

    @get("/v1/model", tags=["Friendly"], summary="What model this is")
    async def model_info() -> ModelInfo:
        return info

    @get("/metrics", tags=["Operations"], summary="Prometheus metrics",
         media_type=CONTENT_TYPE)  # Litestar adds the charset
    async def prometheus() -> bytes:
        return metrics.render()

    handlers: list[Any] = [
        index, server_metadata, live, ready, model_metadata, model_version_metadata,
        model_ready, model_version_ready, model_infer, model_version_infer, predict,
        model_info, prometheus,
        create_static_files_router(path="/static", directories=[STATIC]),
    ]
    return Litestar(
        route_handlers=handlers,
        on_startup=[batcher.start],
        on_shutdown=[batcher.stop],
        middleware=[_metrics_middleware(metrics)],
        exception_handlers={ApiError: _api_error, HTTPException: _http_error,
                            Exception: _internal_error},
        request_max_body_size=limits.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="ablate digit service", version=SERVER_VERSION, path="/schema",
            description="The best MNIST model of an ablate study: the Open Inference "
            "Protocol (V2) REST API, a friendly /v1/predict, a drawing page at /.",
            render_plugins=[SwaggerRenderPlugin()]),
        state=State({"model_version": version, "metrics": metrics}),
        debug=False,
    )


def _error_response(status: int, message: str, headers: dict[str, str] | None = None
                    ) -> Response[Error]:
    return Response(Error(message), status_code=status, headers=headers)


def _api_error(_: Request, exc: ApiError) -> Response[Error]:
    return _error_response(exc.status, exc.message, exc.headers)


def _http_error(request: Request, exc: HTTPException) -> Response[Error]:
    status = exc.status_code
    if "path_template" not in request.scope:  # routing failed: the middleware never ran
        method = request.scope["method"] if request.scope["method"] in METHODS else "OTHER"
        request.app.state["metrics"].observe_request("unmatched", method, status, None)
    if status >= 500:
        log.error("internal error answering %s: %s", _endpoint(request.scope),
                  type(exc).__name__)
    if status == 413:
        limit = request.app.request_max_body_size
        return _error_response(413, f"request body too large: at most {limit:,} bytes")
    if status == 405:
        return _error_response(405, "method not allowed on this path",
                               dict(exc.headers or {}))
    return _error_response(status, _STATUS_WORDS.get(status, "request failed"))


def _internal_error(request: Request, exc: Exception) -> Response[Error]:
    log.error("internal error answering %s: %s", _endpoint(request.scope), type(exc).__name__)
    return _error_response(500, "internal error")


def _endpoint(scope: Scope) -> str:
    """The route template that matched (never the raw path, which the client chose)."""
    return str(scope.get("path_template") or "unmatched")


def _metrics_middleware(metrics: Metrics) -> Callable[[ASGIApp], ASGIApp]:
    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            start, status = time.perf_counter(), 500

            async def send_status(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await app(scope, receive, send_status)
            finally:
                method = str(cast("HTTPScope", scope)["method"])
                method = method if method in METHODS else "OTHER"
                metrics.observe_request(_endpoint(scope), method, status,
                                        time.perf_counter() - start)
        return middleware
    return factory


def resolve_model(source: Path, workdir: Path) -> Path:
    """A model file to serve: `source` itself, or the best run of a run directory
    exported into `workdir`."""
    from serve.export import export_best

    source = Path(source)
    if source.is_dir():
        return export_best(source, to=workdir / "model.safetensors")
    if not source.exists():
        raise UserError(f"{source}: no such file or directory; give a study's run directory "
                        "(e.g. runs/dropout) or a model from `ablate export`")
    return source


def _check_port(host: str, port: int) -> None:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise UserError(f"--host {host}: not an address of this machine; use 127.0.0.1 "
                        "(this machine only) or 0.0.0.0 (every interface)") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError as e:
            raise UserError(f"cannot listen on {host}:{port} ({e.strerror}); pick another "
                            "--port, or stop what is using it") from None


def run_server(source: Path, host: str = "127.0.0.1", port: int = 8000, name: str = "mnist",
               config: ServeConfig | None = None) -> None:
    """`ablate serve`: serve `source` (run directory or exported model) until Ctrl-C."""
    import uvicorn

    config = config or from_env(os.environ)
    _check_port(host, port)  # before minutes of export and loading, not after
    torch.set_num_threads(config.threads)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="ablate-serve-") as tmp:
        model = resolve_model(source, Path(tmp))
        app = create_app(model, name, config)
        log.info("serving %s (version %s) as %r on http://%s:%d/", model,
                 app.state["model_version"], name, host, port)
        # Move everything loaded so far (torch, Litestar, the model) out of the cyclic
        # GC's reach: full collections then scan only request garbage. Measured at
        # concurrency 64: 100 ms pauses (p99 108 ms) became 13 ms p99.
        gc.collect()
        gc.freeze()
        uvicorn.run(app, host=host, port=port, access_log=False, log_level="info",
                    server_header=False)

