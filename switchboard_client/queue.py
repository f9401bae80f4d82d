"""Random chat: join the matchmaker's queue and take the matches it makes (docs/protocol.md, "Random chat").

``async with RandomChat(node, ticket) as chat`` joins; ``call = await chat.match()`` waits for the next
``match.found`` and gives a :class:`~switchboard_client.call.Call` (``kind == "match"``) whose media
path and offerer the node chose; ``await chat.next()`` ends the live pair and requeues. ``close()``
(idempotent) leaves the queue.
"""

from __future__ import annotations

import contextlib
from typing import Any

from switchboard_client.call import CALL_EVENTS, Call, concerns
from switchboard_client.errors import ClosedError, NodeError
from switchboard_client.events import EventStream
from switchboard_client.node import NodeClient


class RandomChat:
    """This socket's place in the random-chat queue."""

    def __init__(self, node: NodeClient, ticket: dict[str, Any] | None = None) -> None:
        self.node = node
        self.ticket = ticket or {}
        """``{"country", "age", "tags", "filters"}`` (docs/matchmaker.md); premium filters need a premium token."""
        self.ignored_filters: list[str] = []
        """Filters the node ignored (premium ones on a non-premium token)."""
        self.current: Call | None = None
        """The live match, if any."""
        self._stream: EventStream | None = None
        self._closed = False

    async def __aenter__(self) -> RandomChat:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Joins the queue (``queue.join``)."""
        if self._closed:
            raise ClosedError("left the queue")
        if self._stream is not None:
            return
        self._stream = self.node.events("match.found", *CALL_EVENTS)
        try:
            reply = await self.node.request("queue.join", ticket=self.ticket)
        except BaseException:
            self._stream.close()
            raise
        self.ignored_filters = list(reply.get("ignored_filters") or [])

    async def match(self) -> Call:
        """The next match (waiting for it); the previous one is closed first."""
        stream = self._check()
        if self.current is not None:
            await self.current._shutdown()
            self.current = None
        found = await stream.wait_for("match.found")
        session = str(found["session_id"])
        # The pair's first offer may already be queued behind match.found: hand it to the call.
        mine = self.node.events(*CALL_EVENTS, where=concerns(session))
        mine.put_back(stream.take(concerns(session)))
        call = Call(self.node, session, "match", mine, peer_user=str((found.get("peer") or {}).get("user_id", "")),
                    media=str(found.get("media", "p2p")), offerer=bool(found.get("offerer")))
        call._accepted.set()
        call._run()
        self.current = call
        return call

    async def next(self) -> str:
        """Ends the live pair and requeues: ``requeued`` or ``queued``."""
        self._check()
        if self.current is not None:
            await self.current._shutdown()
            self.current = None
        return str((await self.node.request("queue.next"))["outcome"])

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.current is not None:
            await self.current._shutdown()
        if self._stream is not None:
            self._stream.close()
        if not self.node.closed:
            with contextlib.suppress(NodeError, ClosedError, TimeoutError):
                await self.node.request("queue.leave")

    def _check(self) -> EventStream:
        if self._closed:
            raise ClosedError("left the queue")
        if self._stream is None:
            raise ClosedError("open() the queue first")
        return self._stream
