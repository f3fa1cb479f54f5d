"""Routes for operators: `/metrics` (Prometheus)."""

from litestar import get

from serve.metrics import CONTENT_TYPE
from serve.service import ServiceDep

__all__ = ["prometheus"]


@get("/metrics", tags=["Operations"], summary="Prometheus metrics",
     media_type=CONTENT_TYPE)  # Litestar adds the charset
async def prometheus(service: ServiceDep) -> bytes:
    return service.metrics.render()
