"""``/api/docs`` is served from this origin: a page whose scripts and styles are our own files (the
browser test renders it: tests/e2e/test_browser_reference.py), each with its type; nothing else."""

from __future__ import annotations

import re

from tests.control_api.conftest import Api


async def test_the_reference_page_and_its_assets(api: Api) -> None:
    resp = await api.client.get("/api/docs")
    assert resp.status == 200 and resp.content_type == "text/html"
    page = await resp.text()
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert "/api/docs/reference.js" in sources and "/api/docs/reference.css" in sources
    assert all(s.startswith(("/", "data:")) for s in sources), sources  # no other origin (the CSP allows none)
    for name, kind in (("reference.js", "text/javascript"), ("reference.css", "text/css")):
        asset = await api.client.get(f"/api/docs/{name}")
        assert asset.status == 200 and asset.content_type == kind, name
    for bad in ("index.html", "..%2Freference.py", "nope.js"):
        assert (await api.client.get(f"/api/docs/{bad}")).status == 404, bad
    assert "innerHTML" not in await (await api.client.get("/api/docs/reference.js")).text()
