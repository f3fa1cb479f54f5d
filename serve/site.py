"""The drawing page at `/` and its static assets under `/static`."""

from pathlib import Path

from litestar import Response, get
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

STATIC = Path(__file__).parent / "static"
PAGE = (STATIC / "index.html").read_bytes()  # read once: it ships with the package


@get("/", include_in_schema=False)
async def index() -> Response[bytes]:
    return Response(PAGE, media_type="text/html; charset=utf-8")


def site_routes() -> list[ControllerRouterHandler]:
    return [index, create_static_files_router(path="/static", directories=[STATIC])]
