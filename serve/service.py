"""What one app instance serves with, built once by the app factory and kept in
`app.state`; handlers receive its parts by name through dependency injection: a
parameter `served: Served`, `batcher: BatcherDep`, `decodes: DecodesDep`,
`limits: LimitsDep` or `metrics: MetricsDep` gets the app's own."""

from dataclasses import dataclass
from typing import cast

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide

from serve.batcher import Batcher
from serve.config import Limits, ServeConfig
from serve.decoding import DecodePool
from serve.metrics import Metrics
from serve.model import ServedModel

STATE_KEY = "service"

Served = NamedDependency[ServedModel]
BatcherDep = NamedDependency[Batcher]
DecodesDep = NamedDependency[DecodePool]
LimitsDep = NamedDependency[Limits]
MetricsDep = NamedDependency[Metrics]


@dataclass(frozen=True)
class Service:
    served: ServedModel
    config: ServeConfig
    metrics: Metrics
    batcher: Batcher  # its worker runs while the app's lifespan does
    decodes: DecodePool  # closed when the lifespan ends


def service_in(state: State) -> Service:
    return cast(Service, state[STATE_KEY])


def service_of(app: Litestar) -> Service:
    return service_in(app.state)


def _served(state: State) -> ServedModel:
    return service_in(state).served


def _batcher(state: State) -> Batcher:
    return service_in(state).batcher


def _decodes(state: State) -> DecodePool:
    return service_in(state).decodes


def _limits(state: State) -> Limits:
    return service_in(state).config.limits


def _metrics(state: State) -> Metrics:
    return service_in(state).metrics


def dependencies() -> dict[str, Provide]:
    """The app's providers, keyed by the parameter names handlers use."""
    return {"served": Provide(_served, sync_to_thread=False),
            "batcher": Provide(_batcher, sync_to_thread=False),
            "decodes": Provide(_decodes, sync_to_thread=False),
            "limits": Provide(_limits, sync_to_thread=False),
            "metrics": Provide(_metrics, sync_to_thread=False)}
