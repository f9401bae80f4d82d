"""Requests waiting for their replies on one JSON WebSocket, by the id each request carried: the wait
the load generator's two signalings share (the node's ``/ws``: ``id``/``ref``, :mod:`sfu.measure_signal`;
Janus's API: ``transaction``, :mod:`sfu.measure_janus`)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp


class Replies:
    """The futures of the requests sent and not answered yet. The socket's reader hands every frame
    that may be a reply to :meth:`answer`; :meth:`ask` sends one request and waits for its reply."""

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
