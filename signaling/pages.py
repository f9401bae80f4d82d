"""The browser pages: one HTML file per route, each loading its ES module from ``/static/``.

The pages are plain files in ``web/`` (no build step); this module only maps the routes a person
types to them. ``/watch/{room}`` serves one page for every room: the module reads the room from
the address.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

PAGES = {
    "/login": "login.html",
    "/broadcast": "broadcast.html",
    "/watch/{room}": "watch.html",
    "/random": "random.html",
    "/moderate": "moderate.html",
}
"""Route -> HTML file in the web directory."""


def install_pages(app: web.Application, web_dir: Path) -> None:
    """Adds a GET route per page (no file system access here: a missing file answers 404)."""
    for route, name in PAGES.items():
        app.router.add_get(route, _serve(web_dir / name))


def _serve(path: Path) -> Callable[[web.Request], Awaitable[web.FileResponse]]:
    async def page(request: web.Request) -> web.FileResponse:
        # Pages change with each release and carry no secrets; never cache them stale.
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})

    return page
