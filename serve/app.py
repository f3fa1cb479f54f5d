"""The app factory: one Litestar app serving one exported model.

`create_app` loads and verifies the model before the app exists (a bad model never
serves), and builds the `Service` the handlers share: kept in `app.state` and handed to
them by dependency injection (a `service` parameter). The app's lifespan runs the
batcher's worker (the service reports ready only while it runs) and the image
decoder's worker processes.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from litestar import Litestar
from litestar.datastructures import State
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin

from ablate.card import ExportedModel
from serve.batcher import Batcher
from serve.bodies import BodyBudget
from serve.config import ServeConfig
from serve.decoding import DecodePool
from serve.errors import exception_handlers
from serve.friendly import FriendlyController
from serve.inference import SERVER_VERSION, InferenceController
from serve.metrics import Metrics
from serve.middleware import MetricsMiddleware, RequestBody, RequestOrigin, security_headers
from serve.model import ServedModel
from serve.operations import prometheus
from serve.service import STATE_KEY, Service, dependencies, service_of
from serve.site import asset, favicon, index

__all__ = ["create_app"]


def create_app(model_path: Path, name: str = "mnist", config: ServeConfig | None = None
               ) -> Litestar:
    """An app serving the exported model at `model_path` as `name`.

    Raises `ModelError` (a `UserError`) when the model is missing, corrupt, tampered
    with or fails its self-test: nothing is served then."""
    config = config or ServeConfig()
    served = ServedModel(name, ExportedModel.load(model_path))
    metrics = Metrics()
    prov = served.card.provenance
    metrics.model.labels(name, served.version, prov.study, prov.arm, str(prov.seed)).set(1)
    limits = config.limits
    service = Service(served=served, config=config, metrics=metrics,
                      batcher=Batcher(served.model.predict, config.batching, metrics),
                      decodes=DecodePool(limits, metrics),
                      bodies=BodyBudget(limits.max_held_body_bytes, metrics))
    return Litestar(
        route_handlers=[InferenceController, FriendlyController, prometheus, index, asset,
                        favicon],
        dependencies=dependencies(),
        lifespan=[_run_service],
        middleware=[MetricsMiddleware(metrics), RequestOrigin(config.allowed_hosts),
                    RequestBody(config.http.body_timeout_s, service.bodies,
                                limits.max_body_bytes)],
        before_send=[security_headers],
        exception_handlers=exception_handlers(metrics),
        request_max_body_size=limits.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="ablate digit service", version=SERVER_VERSION, path="/schema",
            description="The best MNIST model of an ablate study: the Open Inference "
            "Protocol (V2) REST API, a friendly /v1/predict, a drawing page at /.",
            # JSON only: an HTML viewer would load its script from a CDN (offline it
            # breaks, online it runs a third party's code on this origin).
            render_plugins=[JsonRenderPlugin(path=["/", "/openapi.json"])]),
        state=State({STATE_KEY: service}),
        debug=False,
    )


@asynccontextmanager
async def _run_service(app: Litestar) -> AsyncIterator[None]:
    """The batcher's worker and the image decoder's processes run while the app
    serves; stopping the batcher answers whatever still waits with 503."""
    service = service_of(app)
    try:
        await service.decodes.start()
        await service.batcher.start()
        yield
    finally:
        await service.batcher.stop()
        service.decodes.close()
