"""Shows (1:many through the SFU): publish one from aiortc tracks, view one, or tap one as a moderator.

Each object is opened by one call (:func:`publish_show`, :func:`view_show`, :func:`tap_show`) and
closed by ``close()`` (idempotent: it leaves the show and closes the peer connection). The node
client's token must be a room token for the show's room (``broadcaster`` to publish, ``viewer`` to
watch, ``hidden`` for a moderator's tap): docs/protocol.md, "Shows".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiortc import MediaStreamTrack

from switchboard_client.errors import ClosedError, NodeError
from switchboard_client.events import EventStream
from switchboard_client.node import NodeClient
from switchboard_client.peer import Peer

log = logging.getLogger("switchboard_client.show")


class _Member:
    """What a broadcaster and a viewer share: the room, chat, the roster, leaving."""

    def __init__(self, node: NodeClient, room: str) -> None:
        self.node = node
        self.room = room
        self.peer = Peer(node.hello.ice_servers)
        self.joined: dict[str, Any] = {}
        """The ``show.create`` / ``show.join`` reply (``owner``, ``roster``, ``viewers``, ...)."""
        self._closed = False

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


class Broadcast(_Member):
    """The host's side of a show: its tracks go to the SFU; leaving ends the show."""

    async def _open(self, tracks: list[MediaStreamTrack]) -> None:
        self.joined = await self.node.request("show.create", room=self.room)
        self.peer.add_tracks(tracks)
        answer = await self.node.request("show.publish", room=self.room, sdp=await self.peer.offer())
        await self.peer.accept_answer(answer["sdp"])

    async def end(self) -> None:
        """Ends the show for everyone (``show.ended``), then closes."""
        self._check()
        await self.node.request("show.end", room=self.room)
        await self.close()


class Viewing(_Member):
    """A viewer's (or a hidden moderator's) side: the show's tracks arrive in :attr:`peer`."""

    def __init__(self, node: NodeClient, room: str) -> None:
        super().__init__(node, room)
        self._offers: EventStream | None = None
        self._task: asyncio.Task[None] | None = None
        self.ended: dict[str, Any] | None = None
        """The ``show.ended`` event, once the show ended."""

    @property
    def hidden(self) -> bool:
        """True for a moderator's tap: not in any roster, not counted, cannot chat."""
        return bool(self.joined.get("hidden"))

    @property
    def tracks(self) -> list[MediaStreamTrack]:
        return self.peer.tracks

    async def track(self, kind: str = "video") -> MediaStreamTrack:
        """The show's first ``kind`` track, waiting for the broadcaster to publish it."""
        return await self.peer.track(kind)

    async def _open(self) -> None:
        # Listen before asking: the node may send show.offer right after our first answer.
        self._offers = self.events("show.offer", "show.ended")
        self.joined = await self.node.request("show.join", room=self.room)
        offer = await self.node.request("show.subscribe", room=self.room)
        await self.node.request("show.answer", room=self.room, sdp=await self.peer.answer(offer["sdp"]))
        self._task = asyncio.create_task(self._renegotiate(self._offers), name=f"switchboard_client.view.{self.room}")

    async def _renegotiate(self, offers: EventStream) -> None:
        async for event in offers:
            if event["type"] == "show.ended":
                self.ended = event
                await self.peer.close()
                return
            try:
                await self.node.request("show.answer", room=self.room, sdp=await self.peer.answer(event["sdp"]))
            except (NodeError, ClosedError) as exc:
                log.warning("show.offer of %s not answered: %r", self.room, exc)
            except Exception:  # aiortc may raise anything: keep following the show
                log.exception("show.offer of %s failed", self.room)

    async def _stop(self) -> None:
        if self._offers is not None:
            self._offers.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def publish_show(node: NodeClient, room: str, tracks: list[MediaStreamTrack]) -> Broadcast:
    """Creates the show of ``room`` (a ``broadcaster`` token for it) and publishes ``tracks`` in it."""
    show = Broadcast(node, room)
    try:
        await show._open(tracks)
    except BaseException:
        await show.close()
        raise
    return show


async def view_show(node: NodeClient, room: str) -> Viewing:
    """Joins the show and subscribes to its media; ``await viewing.track("video")`` gives the remote track."""
    viewing = Viewing(node, room)
    try:
        await viewing._open()
    except BaseException:
        await viewing.close()
        raise
    return viewing


async def tap_show(node: NodeClient, room: str) -> Viewing:
    """A moderator's hidden view (a ``hidden`` room token): nobody's roster shows it."""
    viewing = await view_show(node, room)
    if not viewing.hidden:
        await viewing.close()
        raise NodeError("forbidden", "a tap needs a hidden (moderator) room token")
    return viewing

