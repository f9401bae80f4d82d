"""Opening one signaling socket to a node: the WebSocket upgrade (bounded, with the waits an
overloaded node asks for: a 503's ``Retry-After``, an ``overloaded`` frame's ``retry_after``) and the
``hello`` it must end in (docs/protocol.md). :class:`~switchboard_client.node.NodeClient` opens
every socket through :func:`handshake`.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from switchboard_client.errors import Disconnected, NodeError

CONNECT_S = 2.0
"""How long a TCP connect to a node may take: a dead box that sends no reset would otherwise hold the
client for the system's TCP timeout. A live node accepts at once (its gate queues after the accept)."""
UPGRADE_S = 5.0
"""How long a reconnect lets the node take to answer the upgrade (TCP connect included): a node's gate may hold a
connect up to ``node.ws_gate_wait_s`` (2 s) before starting it or refusing it with a 503. The waits an
overloaded node asks for (``Retry-After``, ``retry_after``) are not counted here."""


@dataclass(frozen=True)
class Hello:
    """The node's ``hello``."""

    session_id: str
    user_id: str
    resume_token: str
    resumed: bool
    """True when this socket took over an earlier session (its call and shows kept)."""
    token_expires_at: int
    ice_servers: list[dict[str, Any]]
    """``RTCConfiguration.iceServers`` for this user (empty without TURN)."""
    shows: list[Any]
    node: str = ""
    """The id of the node this socket is on (``node_...``)."""

    @staticmethod
    def parse(frame: dict[str, Any]) -> Hello:
        return Hello(str(frame["session_id"]), str(frame["user_id"]), str(frame.get("resume_token", "")),
                     bool(frame.get("resumed")), int(frame.get("token_expires_at") or 0),
                     list(frame.get("ice_servers") or []), list(frame.get("shows") or []), str(frame.get("node") or ""))


def ws_url(url: str) -> str:
    """``http://host:port`` (or ``ws://``, with or without ``/ws``) -> ``ws://host:port/ws``."""
    url = url.rstrip("/")
    if url.startswith("http"):
        url = "ws" + url[4:]
    return url if url.endswith("/ws") else url + "/ws"


async def handshake(http: aiohttp.ClientSession, url: str, params: Mapping[str, str], *, deadline: float | None,
                    hello_timeout_s: float, trace: Callable[..., None],
                    heard: Callable[[], None]) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
    """Opens a socket to ``url`` and reads its first frame: the socket and its ``hello`` frame. Nothing
    waits past ``deadline`` (``time.monotonic()``): the upgrade is bounded by :data:`UPGRADE_S` (with a
    deadline: a reconnect), ``hello`` by ``hello_timeout_s``, an overloaded node's wait by the deadline (else
    :class:`NodeError` ``overloaded``). A socket that does not end in ``hello`` is closed whatever
    happens (an error, a cancel): a half-open socket would stay a session on the node, counted against
    the token's sockets. ``heard`` is called when the node answers at all (a 503, an upgrade)."""

    def left(cap: float) -> float:
        if deadline is None:
            return cap
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no time left in the resume window")
        return min(cap, remaining)

    async def back_off(wait: float) -> None:  # spread: the refused of one burst do not come back at once
        pause = random.uniform(wait, 1.5 * wait)
        if deadline is not None and time.monotonic() + pause > deadline:
            raise NodeError("overloaded", "the node is overloaded (no time left to wait)")
        await asyncio.sleep(pause)

    for _ in range(10):  # an overloaded node says when to come back
        try:
            # A first open() waits as long as the node takes (a storm of first connects is slow, not lost).
            async with asyncio.timeout(left(UPGRADE_S) if deadline is not None else None):
                ws = await http.ws_connect(url, params=params, heartbeat=None, autoping=True,
                                           timeout=aiohttp.ClientWSTimeout(ws_close=2.0))
        except aiohttp.WSServerHandshakeError as exc:  # refused before the upgrade: 503 + Retry-After
            heard()
            if exc.status != 503:
                raise
            trace("ws_refused", url=url)
            await back_off(_retry_after(exc.headers))
            continue
        heard()
        try:
            first = await ws.receive(timeout=left(hello_timeout_s))
            if first.type != aiohttp.WSMsgType.TEXT:
                raise Disconnected(f"the node closed the socket before hello ({ws.close_code})")
            frame = json.loads(first.data)
        except BaseException:
            await _discard(ws)
            raise
        if frame.get("type") == "hello":
            return ws, frame
        await _discard(ws)
        if frame.get("code") == "overloaded":
            trace("ws_refused", url=url)
            await back_off(float(frame.get("retry_after") or 1))
            continue
        raise NodeError(str(frame.get("code")), str(frame.get("message")), frame)
    raise NodeError("overloaded", "the node stayed overloaded")


async def _discard(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Closes a socket that will not be used (the close waits for the node's reply at most
    ``ws_close``, 2 s); a cancel meanwhile still closes the connection."""
    if ws.closed:
        return
    try:
        await ws.close()
    except BaseException:
        ws._response.close()  # (drops the connection: the node sees the socket gone)
        raise


def _retry_after(headers: Mapping[str, str] | None) -> float:
    """Seconds of a 503's ``Retry-After`` (1 when absent or not a number of seconds)."""
    try:
        return max(0.0, float((headers or {}).get("Retry-After", "1")))
    except ValueError:
        return 1.0
