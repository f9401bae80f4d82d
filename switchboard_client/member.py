"""What every side of a show shares (switchboard_client/show.py): the room, chat, the roster,
leaving, and following the node client's sessions to join again on a new one."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from switchboard_client.errors import ClosedError, NodeError
from switchboard_client.events import EventStream
from switchboard_client.node import NodeClient
from switchboard_client.peer import Peer

log = logging.getLogger("switchboard_client.show")


class Member:
    """What a broadcaster and a viewer share: the room, chat, the roster, leaving."""

    def __init__(self, node: NodeClient, room: str, on_peer: Callable[[Peer], None] | None = None) -> None:
        self.node = node
        self.room = room
        self.on_peer = on_peer
        """Called with each new peer connection (the first, then one per rejoin) before it negotiates."""
        self.peer = self._new_peer()
        self.joined: dict[str, Any] = {}
        """The ``show.create`` / ``show.join`` reply (``owner``, ``roster``, ``viewers``, ...)."""
        self.rejoins = 0
        """Times this member joined again on a new session (a lost node, a drain), or (a viewer)
        subscribed again after the node closed its peer connection (``show.peer_closed``)."""
        self.rejoined = asyncio.Event()
        """Set at each rejoin (clear it to wait for the next)."""
        self._closed = False
        self._hellos: EventStream | None = None
        self._follower: asyncio.Task[None] | None = None

    def _new_peer(self) -> Peer:
        peer = Peer(self.node.hello.ice_servers)
        if self.on_peer is not None:
            self.on_peer(peer)
        return peer

    def _follow_node(self) -> None:
        """Watches the node client's sessions: a new one (not resumed) joins the show again."""
        self._hellos = self.node.events("hello")
        self._follower = asyncio.create_task(self._follow(self._hellos), name=f"switchboard_client.rejoin.{self.room}")

    async def _follow(self, hellos: EventStream) -> None:
        async for hello in hellos:
            if hello.get("resumed") or self._closed:
                continue
            try:
                if await self._rejoin():
                    self.rejoins += 1
                    self.rejoined.set()
            except (NodeError, ClosedError) as exc:  # a later session tries again
                log.warning("could not join %s again: %r", self.room, exc)
            except Exception:  # aiortc may raise anything: keep following the node
                log.exception("rejoining %s failed", self.room)

    async def _rejoin(self) -> bool:
        """Joins again on the node client's new session; False when the show is over for this member."""
        raise NotImplementedError

    @property
    def closed(self) -> bool:
        return self._closed

    def events(self, *types: str) -> EventStream:
        """This show's server events (``show.chat``, ``show.roster``, ``show.ended``, ...) from now on."""
        return self.node.events(*types, where=lambda e: e.get("room") == self.room)

    async def roster(self) -> dict[str, Any]:
        """``{"room", "owner", "roster", "viewers"}``: hidden sessions are never in it."""
        self._check()
        return await self.node.request("show.roster", room=self.room)

    async def chat(self, text: str) -> int:
        """Sends a chat line to every member; returns its number in the show."""
        self._check()
        return int((await self.node.request("show.chat", room=self.room, text=text))["id"])

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._hellos is not None:
            self._hellos.close()
        if self._follower is not None and self._follower is not asyncio.current_task():
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
        await self._stop()
        if not self.node.closed:
            with contextlib.suppress(NodeError, ClosedError, TimeoutError):
                await self.node.request("show.leave", room=self.room)
        await self.peer.close()

    async def _stop(self) -> None:
        """Subclasses stop their background work here."""

    def _check(self) -> None:
        if self._closed:
            raise ClosedError(f"left the show {self.room}")
