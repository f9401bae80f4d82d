"""The load generator's JSON WebSocket to the server under test, whichever API it speaks (the node's
``/ws``: :mod:`sfu.measure_signal`; Janus's: :mod:`sfu.measure_janus`): requests waiting for their
replies by the id each carried (``id``/``ref``, or Janus's ``transaction``), the socket's reader, and
what the publisher and viewers (:mod:`sfu.measure`, :mod:`sfu.measure_viewer`) read and set on it."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from typing import Any

import aiohttp


class Replies:
    """The futures of the requests sent and not answered yet. :meth:`serve` reads the socket and hands
    each reply to its request; :meth:`ask` sends one request and waits for its reply."""

    def __init__(self, timeout_s: float = 60.0) -> None:
        self.timeout_s = timeout_s
        """How long a request waits for its reply (a loaded server answers late, never this late)."""
        self._waiting: dict[object, asyncio.Future[dict[str, Any]]] = {}

    async def ask(self, ws: aiohttp.ClientWebSocketResponse, key: object, frame: dict[str, Any]) -> dict[str, Any]:
        """Sends ``frame`` (it carries ``key``) and returns the reply :meth:`answer` got for ``key``;
        TimeoutError after ``timeout_s``. The key is forgotten either way."""
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[key] = fut
        try:
            await ws.send_str(json.dumps(frame))
            return await asyncio.wait_for(fut, self.timeout_s)
        finally:
            self._waiting.pop(key, None)

    def answer(self, key: object, message: dict[str, Any]) -> bool:
        """``message`` is the reply to the request sent with ``key``: True when one was waiting for it."""
        fut = self._waiting.get(key)
        if fut is None or fut.done():
            return False
        fut.set_result(message)
        return True

    async def serve(self, ws: aiohttp.ClientWebSocketResponse, key_of: Callable[[dict[str, Any]], object],
                    other: Callable[[dict[str, Any]], None]) -> None:
        """Reads ``ws``'s text frames until it closes: one that answers a waiting request (``key_of``
        names the request a frame answers; None: it answers none) goes to it, any other to ``other``."""
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            m = json.loads(msg.data)
            key = key_of(m)
            if key is None or not self.answer(key, m):
                other(m)


class SignalSocket:
    """What a signaling holds, whichever API it speaks: its socket and requests, and what the
    publisher and viewers read and set on it."""

    def __init__(self) -> None:
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)
        self._replies = Replies()
        self.on_offer: Any = None
        """Called with the server's offer when it renegotiates by itself (``show.offer``; never on Janus)."""
        self.on_closed: Any = None
        """Called with the reason when the server closes our peer connection (``show.peer_closed``, a
        Janus ``hangup`` of our current handle)."""
        self.tasks: set[asyncio.Future[None]] = set()
        self.told: list[dict[str, Any]] = []
        """``show.peer_closed`` / ``show.media_stopped`` messages the server sent us (Janus's hangups as
        ``show.peer_closed``)."""
        self.retries = 0
        """Joins the server shed (``unavailable`` with ``retry_after``) and we asked again."""
        self.reconnects = 0
        """Connects the server shed (``overloaded``) and we made again."""
