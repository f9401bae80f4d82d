"""The load generator's request/reply wait (sfu/measure_socket.py), over a real WebSocket: replies
that come out of order each reach their own request, frames that answer nothing go to the reader's
other handler, and a reply that never comes ends its request with TimeoutError (and is forgotten)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from sfu.measure_socket import Replies

FANOUT_PATHS = ()
"""No Worker or WorkerPool: one run (tests/conftest.py)."""


async def late_server(ws_requests: list[dict[str, Any]]) -> web.Application:
    """Answers every two requests in reverse order, after an event of its own; never answers ``mute``."""

    async def handle(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        pending: list[dict[str, Any]] = []
        async for msg in ws:
            frame = json.loads(msg.data)
            ws_requests.append(frame)
            if frame["kind"] == "mute":
                continue
            pending.append(frame)
            if len(pending) == 2:
                await ws.send_str(json.dumps({"type": "event", "ref": pending[0]["id"]}))
                for each in reversed(pending):
                    await ws.send_str(json.dumps({"type": "reply", "ref": each["id"], "echo": each["kind"]}))
                pending.clear()
        return ws

    app = web.Application()
    app.router.add_get("/ws", handle)
    return app


async def test_replies_out_of_order_reach_their_requests_and_a_silent_one_times_out(
        aiohttp_server: Callable[..., Awaitable[Any]]) -> None:
    seen: list[dict[str, Any]] = []
    server = await aiohttp_server(await late_server(seen))
    replies = Replies()
    others: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as http, http.ws_connect(server.make_url("/ws")) as ws:

        reader = asyncio.create_task(replies.serve(ws, lambda m: m["ref"] if m["type"] == "reply" else None,
                                                   others.append))
        try:
            first, second = await asyncio.gather(replies.ask(ws, 1, {"id": 1, "kind": "one"}),
                                                 replies.ask(ws, 2, {"id": 2, "kind": "two"}))
            assert (first["echo"], second["echo"]) == ("one", "two")
            assert others == [{"type": "event", "ref": 1}]  # not a reply: the reader's, not the request's
            assert not replies.answer(1, {"type": "reply", "ref": 1})  # answered already: nobody waits
            replies.timeout_s = 0.2
            with pytest.raises(TimeoutError):
                await replies.ask(ws, 3, {"id": 3, "kind": "mute"})
            assert not replies.answer(3, {"type": "reply", "ref": 3})  # forgotten after its timeout
            assert [f["kind"] for f in seen] == ["one", "two", "mute"]
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
