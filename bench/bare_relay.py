"""The baseline of ``bench signaling --baseline bare``: a bare aiohttp + uvloop WebSocket relay.

It speaks just enough of the protocol for the bench client (``hello``, ``call.invite``,
``call.accept``, ``call.chat``, ``ping``), with none of the node's work: no token check (the user is
read from the token's payload unverified), no Redis, no sessions, limits or keepalive. What the node
adds on top of this is what the comparison shows. Compression off, as on the node.

    python -m bench.bare_relay PORT      (prints "listening on port N" when ready)
"""

from __future__ import annotations

import base64
import itertools
import json
import sys
from typing import Any

import uvloop
from aiohttp import WSMsgType, web


def _user(token: str) -> str:
    payload = token.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"])


class Relay:
    def __init__(self) -> None:
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.calls: dict[str, tuple[str, str]] = {}
        self._ids = itertools.count(1)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False, heartbeat=None)
        await ws.prepare(request)
        user = _user(request.query["token"])
        self.sockets[user] = ws
        await ws.send_str(json.dumps({"type": "hello", "user_id": user}))
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._on(user, ws, json.loads(msg.data))
        finally:
            if self.sockets.get(user) is ws:
                del self.sockets[user]
        return ws

    async def _on(self, user: str, ws: web.WebSocketResponse, m: dict[str, Any]) -> None:
        kind, ref = m.get("type"), m.get("id")
        reply: dict[str, Any] = {}
        if kind == "call.invite":
            call_id = f"c{next(self._ids)}"
            self.calls[call_id] = (user, m["to"])
            reply["call_id"] = call_id
            await self._to(m["to"], {"type": "call.ring", "call_id": call_id, "from": user})
        elif kind == "call.accept":
            reply["call_id"] = m["call_id"]
        elif kind == "call.chat":
            a, b = self.calls[m["call_id"]]
            await self._to(b if user == a else a, {"type": "call.chat", "call_id": m["call_id"], "from": user,
                                                    "text": m["text"]})
        if ref is not None:
            await ws.send_str(json.dumps({"type": "reply", "ref": ref, **reply}))

    async def _to(self, user: str, message: dict[str, Any]) -> None:
        ws = self.sockets.get(user)
        if ws is not None and not ws.closed:
            await ws.send_str(json.dumps(message))


async def _serve(port: int) -> None:
    import asyncio

    app = web.Application()
    app.router.add_get("/ws", Relay().handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(f"bare relay listening on port {port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(_serve(int(sys.argv[1])))
