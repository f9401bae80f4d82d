"""The browser pages: every route serves its HTML, every page's module and every import it makes
exist in web/ (a renamed file would only fail in a browser otherwise); /static/ answers 404 to any
name it cannot hold; pages and files carry the security headers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from signaling.pages import PAGES, install_pages
from switchboard.errors import SettingsError
from switchboard.runtime import base_app
from switchboard.settings import NodeSettings

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
            resp = await client.get(route.replace("{room}", "show-1").replace("{user}", "u-1"))
            assert resp.status == 200, route
            assert resp.headers["Cache-Control"] == "no-cache"
            assert f'src="/static/{name.removesuffix(".html")}.js"' in await resp.text()


def served_app() -> web.Application:
    """The pages on a process's root application (as `up` and `node` serve them: security headers)."""
    app = base_app(CollectorRegistry())
    install_pages(app, WEB)
    return app


async def test_static_serves_modules_and_answers_404_to_names_it_cannot_hold() -> None:
    async with TestClient(TestServer(served_app())) as client:
        resp = await client.get("/static/lib/signal.js")
        assert resp.status == 200 and resp.content_type in ("text/javascript", "application/javascript")
        assert (await client.head("/static/style.css")).status == 200
        odd = ["/static/" + "a" * 300, "/static/lib/" + "b" * 256, "/static/" + "a/" * 3000 + "x.js",
               "/static/" + "é" * 200, "/static/%2e%2e/pyproject.toml", "/static/lib/%2e%2e/%2e%2e/README.md",
               "/static/.hidden", "/static/a%00b", "/static/missing.js"]
        for path in odd:
            resp = await client.get(path)
            assert resp.status == 404, (path[:40], resp.status)
        assert (await client.get("/static/lib")).status in (403, 404)


async def test_pages_and_files_carry_the_security_headers() -> None:
    async with TestClient(TestServer(served_app())) as client:
        for route in [*PAGES, "/static/watch.js", "/static/nope.js"]:
            resp = await client.get(route.replace("{room}", "show-1").replace("{user}", "u-1"))
            assert resp.headers["X-Content-Type-Options"] == "nosniff", route
            assert resp.headers["X-Frame-Options"] == "DENY", route
            assert resp.headers["Referrer-Policy"] == "no-referrer", route
            csp = resp.headers["Content-Security-Policy"]
            assert "frame-ancestors 'none'" in csp, route
            if resp.content_type == "text/html":
                host = f"{client.host}:{client.port}"
                assert "script-src 'self';" in csp and "'unsafe-inline'" not in csp.split("style-src-attr")[0]
                assert f"connect-src 'self' ws://{host} wss://{host};" in csp
                assert "media-src 'self' blob: mediastream:" in csp
            else:
                assert csp == "default-src 'none'; frame-ancestors 'none'; sandbox", route


async def test_a_not_modified_page_keeps_its_policy() -> None:
    """A 304's headers replace the cached page's: it must not bring the policy of a non-page."""
    async with TestClient(TestServer(served_app())) as client:
        first = await client.get("/random")
        again = await client.get("/random", headers={"If-Modified-Since": first.headers["Last-Modified"]})
        assert again.status == 304
        assert "Content-Security-Policy" not in again.headers
        assert again.headers["X-Frame-Options"] == "DENY"


async def test_pages_may_open_sockets_to_the_other_nodes_named_in_settings_and_nowhere_else() -> None:
    """Placement can send a page to another node: its socket origin must be in the pages' CSP."""
    app = base_app(CollectorRegistry(), socket_urls=("https://n2.example.com", "http://127.0.0.1:9000/"))
    install_pages(app, WEB)
    async with TestClient(TestServer(app)) as client:
        csp = (await client.get("/random")).headers["Content-Security-Policy"]
        connect = csp.split("connect-src ")[1].split(";")[0].split()
        host = f"{client.host}:{client.port}"
        assert connect == ["'self'", f"ws://{host}", f"wss://{host}", "wss://n2.example.com", "ws://127.0.0.1:9000"]
        other = (await client.get("/static/lib/signal.js")).headers["Content-Security-Policy"]
        assert "n2.example.com" not in other


@pytest.mark.parametrize("url", ["javascript:alert(1)", "https://n2.example.com/ws", "wss://n2", "https://u@n2",
                                 "https://n2.example.com; script-src *", ""])
def test_a_node_origin_that_is_not_a_plain_http_origin_is_a_settings_error(url: str) -> None:
    with pytest.raises(SettingsError, match="page_origins"):
        NodeSettings(page_origins=(url,))
