"""``/api/docs``: the API reference page, served from this origin (the pages' CSP allows nothing else).

Three static files next to this module: an HTML page, its stylesheet and a small renderer
(``reference.js``, no framework) that fetches ``/api/openapi.json`` and lays out every operation by tag,
with parameters, request fields and responses. The document stays the one source: the page only shows it.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

FILES = Path(__file__).resolve().parent / "reference"
_TYPES = {"reference.js": "text/javascript", "reference.css": "text/css"}


async def _page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(FILES / "index.html", headers={"Content-Type": "text/html; charset=utf-8",
                                                           "Cache-Control": "no-cache"})


async def _asset(request: web.Request) -> web.FileResponse:
    name = request.match_info["name"]
    if name not in _TYPES:
        raise web.HTTPNotFound()
    return web.FileResponse(FILES / name, headers={"Content-Type": f"{_TYPES[name]}; charset=utf-8",
                                                   "Cache-Control": "no-cache"})


def install_reference(app: web.Application) -> None:
    """``GET /docs`` (the page) and ``GET /docs/{name}`` (its two assets) on the ``/api`` application."""
    app.router.add_get("/docs", _page)
    app.router.add_get("/docs/{name}", _asset)
