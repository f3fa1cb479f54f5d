"""The drawing page at `/` and its assets under `/static`, read once from the package.

The assets are a fixed table looked up by name, not files looked up by path, so no
path a client writes (`%00`, `..%2f`) reaches the file system.
"""

from pathlib import Path

from litestar import Response, get
from litestar.params import FromPath

from serve.errors import ApiError

__all__ = ["STATIC", "asset", "favicon", "index"]

STATIC = Path(__file__).parent / "static"
_MEDIA_TYPES = {"index.html": "text/html; charset=utf-8",
                "app.js": "text/javascript; charset=utf-8",
                "style.css": "text/css; charset=utf-8"}
_FILES = {name: (STATIC / name).read_bytes() for name in _MEDIA_TYPES}


@get("/", include_in_schema=False)
async def index() -> Response[bytes]:
    return Response(_FILES["index.html"], media_type=_MEDIA_TYPES["index.html"])


@get("/static/{name:str}", include_in_schema=False)
async def asset(name: FromPath[str]) -> Response[bytes]:
    if name not in _FILES or name == "index.html":
        raise ApiError(404, "not found")
    return Response(_FILES[name], media_type=_MEDIA_TYPES[name])


@get("/favicon.ico", include_in_schema=False, status_code=204)
async def favicon() -> None:
    """No icon: an empty answer rather than a 404 for every page a browser opens."""
