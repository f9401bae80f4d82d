"""The browser pages: one HTML file per route, each loading its ES module from ``/static/``.

The pages are plain files in ``web/`` (no build step); this module maps the routes a person types
to them, and serves ``/static/`` itself. ``/watch/{room}`` serves one page for every room and
``/u/{user}`` one for every profile: the module reads the room (the user) from the address. Their
security headers (CSP, nosniff, no framing) come
from the process's root application (:mod:`switchboard.headers`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

PAGES = {
    "/login": "login.html",
    "/broadcast": "broadcast.html",
    "/earnings": "earnings.html",
    "/watch/{room}": "watch.html",
    "/random": "random.html",
    "/admin": "admin.html",
    "/me": "me.html",
    "/people": "people.html",
    "/u/{user}": "user.html",
    "/space": "space.html",
    "/messages": "messages.html",
    "/wallet": "wallet.html",
}
"""Route -> HTML file in the web directory."""

REDIRECTS = {"/moderate": "/admin#live"}
"""Old addresses -> where their page lives now (the moderation console absorbed /moderate)."""


STATIC_NAME = re.compile(r"^(?:[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}/){0,4}[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}$")
"""What a ``/static/`` name may be: a few short segments of plain characters, none starting with a dot
(so no ``..``, no hidden file). Anything else is 404 before the file system is asked: a name the
kernel refuses (ENAMETOOLONG) must not become a 500."""


def install_pages(app: web.Application, web_dir: Path) -> None:
    """Adds a GET route per page and ``/static/{name}`` for the files in ``web_dir`` (no file system
    access here: a missing file answers 404)."""
    for route, name in PAGES.items():
        app.router.add_get(route, _serve(web_dir / name))
    for route, target in REDIRECTS.items():
        app.router.add_get(route, _redirect(target))
    app.router.add_get("/static/{name:.+}", _static(web_dir))


def _static(web_dir: Path) -> Callable[[web.Request], Awaitable[web.FileResponse]]:
    async def static(request: web.Request) -> web.FileResponse:
        name = request.match_info["name"]
        if not STATIC_NAME.match(name):
            raise web.HTTPNotFound()
        # FileResponse stats and opens in a thread: missing is 404, a directory 403.
        return web.FileResponse(web_dir / name)

    return static


def _redirect(target: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def moved(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(target)

    return moved


def _serve(path: Path) -> Callable[[web.Request], Awaitable[web.FileResponse]]:
    async def page(request: web.Request) -> web.FileResponse:
        # Pages change with each release and carry no secrets; never cache them stale.
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})

    return page
