"""The bench's own tools do what the figures rely on: the lean HTTP client sees every answer's status
and Retry-After; the bare relay relays a call's lines like the node does."""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bench import http_load
from bench.bare_relay import Relay


async def test_lean_client_reports_statuses_and_retry_after(aiohttp_server: Callable[..., Awaitable[Any]]) -> None:
    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def full(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=503, text="{}", headers={"Retry-After": "1"})

    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_post("/full", full)
    server = await aiohttp_server(app)
    pool = http_load.Pool("127.0.0.1", server.port, max_connections=4)
    requests = [http_load.build("GET", "127.0.0.1", server.port, "/ok"),
                http_load.build("POST", "127.0.0.1", server.port, "/full", {"Content-Type": "application/json"},
                                b'{"a": 1}')]
    outcomes = await http_load.open_loop(pool, requests, rps=200, seconds=0.2)
    pool.close()
    assert [o.status for o in outcomes] == [200, 503] * 20
    assert all(o.retry_after == "1" for o in outcomes if o.status == 503)
    assert all(o.elapsed > 0 for o in outcomes)


def _token(user: str) -> str:
    payload = base64.urlsafe_b64encode(json.dumps({"sub": user}).encode()).decode().rstrip("=")
    return f"e30.{payload}.sig"


async def test_bare_relay_carries_a_call() -> None:
    app = web.Application()
    app.router.add_get("/ws", Relay().handle)
    async with TestClient(TestServer(app)) as client:
        a = await client.ws_connect("/ws", params={"token": _token("a")})
        b = await client.ws_connect("/ws", params={"token": _token("b")})
        assert (await a.receive_json())["type"] == "hello"
        assert (await b.receive_json())["type"] == "hello"
        await a.send_json({"type": "call.invite", "id": 1, "to": "b"})
        call_id = (await a.receive_json())["call_id"]
        assert (await b.receive_json())["type"] == "call.ring"
        await b.send_json({"type": "call.accept", "id": 2, "call_id": call_id})
        assert (await b.receive_json())["type"] == "reply"
        await a.send_json({"type": "call.chat", "call_id": call_id, "text": "hi"})
        line = await b.receive_json()
        assert line == {"type": "call.chat", "call_id": call_id, "from": "a", "text": "hi"}
        await a.close()
        await b.close()
