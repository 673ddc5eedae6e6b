"""The operator console: one page at `/` and its static files under `/console/`, shipped in this package."""

import os
from os import PathLike
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

CONSOLE_DIR = Path(__file__).parent.parent / "console"

# The page loads nothing but its own files (it must work offline) and shows raster images as `blob:` URLs,
# fetched with the bearer token; `no-referrer` keeps the event stream's `?ticket=` out of Referer headers.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob:; media-src 'self' blob:; object-src 'none'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class ConsoleFiles(StaticFiles):
    """The console's own files, checked again on every load (cheaply, by their ETag) rather than not stored at all."""

    def file_response(
        self, full_path: PathLike[str] | str, stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


async def page(request: Request) -> Response:
    """The operator console's page.
    ---
    summary: The operator console's page
    description: >-
      Static HTML; it loads its CSS and JavaScript from `/console/` (a static mount, not described here) and
      nothing from elsewhere, and signs in with an operator's token.
    tags: [console]
    responses:
      "200": {description: the page, content: {text/html: {schema: {type: string}}}}
    """
    return FileResponse(CONSOLE_DIR / "index.html", headers=PAGE_HEADERS)


routes: list[BaseRoute] = [
    Route("/", page, methods=["GET"]),
    Mount("/console", ConsoleFiles(directory=CONSOLE_DIR), name="console"),
]
