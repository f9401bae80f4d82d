"""A drain's move, make-before-break: the old socket stays open beside the new session for a while.

A draining node names another in a ``reconnect`` (docs/protocol.md) and keeps serving its sockets,
media included, until each client has closed its socket or ``node.drain_grace_s`` ends.
:class:`~switchboard_client.node.NodeClient` opens the new session first; once it has said ``hello``
its requests go there, and a :class:`Handover` keeps the old socket open until every party that gets
media through the old session (the node client's *switchers*: show viewings and taps) has its new
peer connection delivering (:meth:`Handover.switched`), or :data:`MOVE_OVERLAP_S` passed; then it
closes the old socket, and the drained node, empty, exits.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import aiohttp

MOVE_OVERLAP_S = 5.0
"""How long the old socket of a drain's move stays open at most after the new session's ``hello``:
the switchers still get media through it meanwhile; one whose new join or first frame has not come
by then loses the old media and follows the lost-node path (a show viewing joins again)."""


class Handover:
    """The old socket of one move, until its switchers switched or the bound. ``close()`` is idempotent."""

    def __init__(self, old: aiohttp.ClientWebSocketResponse, old_node: str, waiting: set[object],
                 trace: Callable[..., None], bound_s: float = MOVE_OVERLAP_S) -> None:
        self.old_node = old_node
        """The id of the node being left."""
        self.done = asyncio.Event()
        """Set once the old socket is closed (the old session's media end with it)."""
        self._old = old
        self._waiting = set(waiting)
        self._switched = asyncio.Event()
        self._trace = trace
        if not self._waiting:
            self._switched.set()
        self._task = asyncio.get_running_loop().create_task(self._run(bound_s), name="switchboard_client.handover")

    def waits_for(self, who: object) -> bool:
        """True while the old socket is kept open for ``who`` (it should switch make-before-break)."""
        return who in self._waiting and not self.done.is_set()

    def switched(self, who: object) -> None:
        """``who`` no longer needs the old session (its new media flows, it gave up, or it closed)."""
        self._waiting.discard(who)
        if not self._waiting:
            self._switched.set()

    async def _run(self, bound_s: float) -> None:
        late = 0
        try:
            async with asyncio.timeout(bound_s):
                await self._switched.wait()
        except TimeoutError:
            late = len(self._waiting)
        await self._close_old()
        self._trace("moved", node=self.old_node, late=late)

    async def _close_old(self) -> None:
        self._waiting.clear()
        try:
            with contextlib.suppress(aiohttp.ClientError, OSError, RuntimeError):
                await self._old.close(code=1000, message=b"moved")
        finally:
            self.done.set()

    def finish(self) -> None:
        """Closes the old socket now (a newer move begins, or the client closes)."""
        self._switched.set()

    async def close(self) -> None:
        self.finish()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        if not self.done.is_set():  # cancelled before it closed the socket
            await self._close_old()
