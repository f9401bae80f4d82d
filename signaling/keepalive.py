"""Liveness of every socket of a node, kept by one task instead of timers on each socket.

aiohttp's per-socket ``heartbeat`` costs each socket two timer handles (~0.9 KiB held for its
lifetime) and a loop callback for every frame it receives. Here a socket costs one dict entry:
the dict maps each socket to the time it is next due for a check and, because every update moves
the entry to the end, stays ordered by that time, so each tick looks only at the sockets due.

A socket silent for ``interval_s`` gets a WebSocket ping; one still silent ``interval_s`` after
that is closed. Any frame from the client (a pong, a ping, a message) counts as a sign of life.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiohttp import WSCloseCode, web

from switchboard.tasks import stop_task

TICKS_PER_INTERVAL = 200
"""Checks per interval: the pings due fall into small batches (10,000 sockets: ~50 per tick)."""


class Keepalive:
    """Pings silent sockets and closes dead ones. Owned by the gateway: ``start()``, ``close()``."""

    def __init__(self, interval_s: float) -> None:
        self._interval_s = interval_s
        self._due: dict[web.WebSocketResponse, float] = {}
        """Socket -> monotonic time of its next check, ordered by that time (oldest first)."""
        self._pinged: set[web.WebSocketResponse] = set()
        """Sockets pinged and not heard from since."""
        self._sends: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="ws-keepalive")

    async def close(self) -> None:
        """Stops the checks. Safe to call twice."""
        if self._task is not None:
            await stop_task(self._task)
        for task in list(self._sends):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._due.clear()
        self._pinged.clear()

    def watch(self, ws: web.WebSocketResponse) -> None:
        self._due[ws] = time.monotonic() + self._interval_s

    def forget(self, ws: web.WebSocketResponse) -> None:
        self._due.pop(ws, None)
        self._pinged.discard(ws)

    def heard(self, ws: web.WebSocketResponse) -> None:
        """A frame came from ``ws``: its next check moves an interval ahead (and to the end)."""
        due = self._due
        if ws in due:
            del due[ws]
            due[ws] = time.monotonic() + self._interval_s
            if ws in self._pinged:
                self._pinged.discard(ws)

    @property
    def watched(self) -> int:
        return len(self._due)

    async def _run(self) -> None:
        tick = self._interval_s / TICKS_PER_INTERVAL
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            due = []
            for ws, at in self._due.items():
                if at > now:
                    break
                due.append(ws)
            for ws in due:
                if ws in self._pinged or ws.closed:
                    self.forget(ws)
                    self._spawn(ws.close(code=WSCloseCode.GOING_AWAY, message=b"no pong"))
                else:
                    self._pinged.add(ws)
                    del self._due[ws]
                    self._due[ws] = now + self._interval_s
                    self._spawn(ws.ping())

    def _spawn(self, coro: object) -> None:
        task = asyncio.get_running_loop().create_task(self._quietly(coro))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    @staticmethod
    async def _quietly(coro: object) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await coro  # type: ignore[misc]
