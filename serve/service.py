"""What one app instance serves with: built once by the app factory, kept in
`app.state`, and handed to every handler that declares a parameter
`service: ServiceDep` by dependency injection.

One dependency, not one per part: Litestar resolves several dependencies of a handler
concurrently in an anyio task group, which measured ~100 us of CPU per request here
(a third of an inference request's cost)."""

from dataclasses import dataclass
from typing import cast

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide

from serve.batcher import Batcher
from serve.bodies import BodyBudget
from serve.config import ServeConfig
from serve.decoding import DecodePool
from serve.metrics import Metrics
from serve.model import ServedModel

__all__ = ["STATE_KEY", "Service", "ServiceDep", "dependencies", "service_in", "service_of"]

STATE_KEY = "service"

@dataclass(frozen=True)
class Service:
    served: ServedModel
    config: ServeConfig
    metrics: Metrics
    batcher: Batcher  # its worker runs while the app's lifespan does
    decodes: DecodePool  # its worker processes run while the lifespan does
    bodies: BodyBudget  # request-body bytes held at once


def service_in(state: State) -> Service:
    return cast(Service, state[STATE_KEY])


def service_of(app: Litestar) -> Service:
    return service_in(app.state)


ServiceDep = NamedDependency[Service]


def dependencies() -> dict[str, Provide]:
    """The app's provider, keyed by the parameter name handlers use."""
    return {"service": Provide(service_in, sync_to_thread=False)}
