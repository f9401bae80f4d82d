"""The browser pages: every route serves its HTML, every page's module and every import it makes
exist in web/ (a renamed file would only fail in a browser otherwise)."""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from signaling.pages import PAGES, install_pages

WEB = Path(__file__).resolve().parents[2] / "web"


def test_every_page_and_module_import_exists() -> None:
    for name in PAGES.values():
        html = (WEB / name).read_text()
        scripts = re.findall(r'<script type="module" src="/static/([^"]+)"', html)
        assert scripts, f"{name} loads no module"
        pending = [WEB / s for s in scripts]
        seen: set[Path] = set()
        while pending:
            module = pending.pop()
            assert module.is_file(), f"{name}: {module.relative_to(WEB)} is missing"
            if module in seen:
                continue
            seen.add(module)
            for target in re.findall(r'^import .* from "(\.[^"]+)";$', module.read_text(), re.M):
                pending.append((module.parent / target).resolve())


async def test_routes_serve_the_pages() -> None:
    app = web.Application()
    install_pages(app, WEB)
    async with TestClient(TestServer(app)) as client:
        for route, name in PAGES.items():
            resp = await client.get(route.replace("{room}", "show-1"))
            assert resp.status == 200, route
            assert resp.headers["Cache-Control"] == "no-cache"
            assert f'src="/static/{name.removesuffix(".html")}.js"' in await resp.text()
