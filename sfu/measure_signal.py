"""The load generator's signaling (``sfu.measure``): the node's ``/ws`` or the MediaRelay baseline's HTTP
offer/answer API (Janus's JSON API is :mod:`sfu.measure_janus`), and the line protocol with the bench
(``emit``: JSON lines on stdout; ``read_command``: the bench's lines on stdin)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sys
import time
from typing import Any

import aiohttp

from sfu.measure_janus import SCHEME as JANUS_SCHEME
from sfu.measure_janus import JanusSignal
from sfu.measure_socket import SignalSocket


class Refused(RuntimeError):
    """The server answered a request with an error frame."""

    def __init__(self, kind: str, reply: dict[str, Any]) -> None:
        super().__init__(f"{kind}: {reply}")
        self.code = str(reply.get("code", ""))
        self.retry_after = float(reply.get("retry_after") or 0)
        """The server's hint when it shed the request for its load (0: not a shed)."""


JOIN_PATIENCE_S = 120.0
"""How long a viewer keeps trying to get in while the server sheds it (as a patient person would)."""


async def backoff(retry_after: float) -> None:
    """Wait as the server asked, with jitter so that a shed crowd does not come back in step."""
    await asyncio.sleep(max(0.5, retry_after) * (0.5 + random.random()))


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


async def read_command() -> str:
    return (await asyncio.to_thread(sys.stdin.readline)).strip()


class Signal(SignalSocket):
    """Offer/answer with the server under test: the node's /ws, or the baseline's HTTP API."""

    def __init__(self, http: aiohttp.ClientSession, url: str, token: str, room: str) -> None:
        super().__init__()
        self.http, self.url, self.token, self.room = http, url, token, room
        self.relay_id = ""
        self._reader: asyncio.Task[None] | None = None

    @property
    def is_node(self) -> bool:
        return self.url.startswith("ws")

    async def open(self) -> None:
        """The socket, up to its ``hello``; a node that sheds the connect (``overloaded``, then close
        1013) is asked again after its ``retry_after``, as docs/protocol.md tells clients to."""
        if not self.is_node:
            return
        deadline = time.monotonic() + JOIN_PATIENCE_S
        while True:
            ws = await self.http.ws_connect(self.url, params={"token": self.token}, heartbeat=None)
            msg = await ws.receive(timeout=60)
            first = json.loads(msg.data) if msg.type is aiohttp.WSMsgType.TEXT else {}
            if first.get("type") == "hello":
                break
            await ws.close()
            if first.get("code") != "overloaded" or time.monotonic() > deadline:
                raise RuntimeError(f"no hello: {first or msg}")
            self.reconnects += 1
            await backoff(float(first.get("retry_after") or 1))
        self.ws = ws
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        await self._replies.serve(self.ws, lambda m: m.get("ref") if m["type"] in ("reply", "error") else None,
                                  self._heard)

    def _heard(self, m: dict[str, Any]) -> None:
        """A server message that answers no request."""
        if m["type"] == "show.offer" and self.on_offer is not None:
            self.tasks.add(asyncio.ensure_future(self.on_offer(m["sdp"])))
        elif m["type"] in ("show.peer_closed", "show.media_stopped"):
            self.told.append({"type": m["type"], "reason": m.get("reason"), "at": time.monotonic()})
            if m["type"] == "show.peer_closed" and self.on_closed is not None:
                self.on_closed(m.get("reason"))

    async def request(self, kind: str, **body: Any) -> dict[str, Any]:
        if not self.is_node:
            async with self.http.post(f"{self.url}/{kind}", json={"id": self.relay_id, **body}) as r:
                r.raise_for_status()
                reply: dict[str, Any] = await r.json()
            self.relay_id = reply.get("id", self.relay_id)
            return reply
        assert self.ws is not None
        ref = next(self._ids)
        reply = await self._replies.ask(self.ws, ref, {"type": kind, "id": ref, "room": self.room, **body})
        if reply["type"] == "error":
            raise Refused(kind, reply)
        return reply

    async def publish(self, offer: str) -> str:
        if self.is_node:
            await self.request("show.create")
            return (await self.request("show.publish", sdp=offer))["sdp"]
        return (await self.request("publish", sdp=offer))["sdp"]

    async def subscribe(self) -> str:
        """The server's offer; a join the worker shed (``unavailable`` with ``retry_after``: it is pacing
        joins) is asked again after the hint."""
        if not self.is_node:
            return (await self.request("subscribe"))["sdp"]
        deadline = time.monotonic() + JOIN_PATIENCE_S
        while True:
            try:
                return (await self.request("show.subscribe"))["sdp"]
            except Refused as exc:
                if not exc.retry_after or time.monotonic() > deadline:
                    raise
                self.retries += 1
                await backoff(exc.retry_after)

    async def enter(self) -> None:
        """Joins the show (the node only): the roster, chat and ``show.offer`` from now on."""
        if self.is_node:
            await self.request("show.join")

    async def answer(self, sdp: str) -> None:
        await self.request("show.answer" if self.is_node else "answer", sdp=sdp)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


AnySignal = Signal | JanusSignal


def signal_for(http: aiohttp.ClientSession, url: str, token: str, room: str) -> AnySignal:
    """The signaling the URL names: Janus's API (``janus+ws://``), else the node's or the relay's."""
    if url.startswith(JANUS_SCHEME):
        return JanusSignal(http, url, token, room)
    return Signal(http, url, token, room)

