"""Shows (1:many through the SFU): publish one from aiortc tracks, view one, or tap one as a moderator.

Each object is opened by one call (:func:`publish_show`, :func:`view_show`, :func:`tap_show`) and
closed by ``close()`` (idempotent: it leaves the show and closes the peer connection). The node
client's token must be a room token for the show's room (``broadcaster`` to publish, ``viewer`` to
watch, ``hidden`` for a moderator's tap): docs/protocol.md, "Shows".

After a lost node (or a drain) the node client starts a new session elsewhere; a show's member then
joins again by itself on the new node (a new peer connection; :attr:`_Member.rejoins` counts it). A
viewer whose peer connection the node closed (``show.peer_closed``: it died, or the worker shed it)
subscribes again on the same session with a new one, counted the same way.
The broadcaster creates the show again there (the API places the room's clients on one live node). A
viewer asks to join until the show is back, for up to :data:`REJOIN_WINDOW_S`; then the show has ended
for it with reason ``node lost`` (``show.ended`` on its event streams: the dead node could not say it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from aiortc import MediaStreamTrack
from aiortc.contrib.media import MediaRelay

from switchboard_client.errors import ClosedError, NodeError
from switchboard_client.events import EventStream
from switchboard_client.node import NodeClient
from switchboard_client.peer import Peer

log = logging.getLogger("switchboard_client.show")

REJOIN_WINDOW_S = 20.0
"""How long a viewer that lost its node keeps asking to join again (the show comes back when its
broadcaster has reconnected and published again) before the show counts as ended (``node lost``)."""


OVERLOADED_PAUSE_S = 1.0
"""A viewer the node shed (``show.peer_closed``, ``overloaded``) subscribes again after 1-2 s."""


class _Member:
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


class Broadcast(_Member):
    """The host's side of a show: its tracks go to the SFU; leaving ends the show."""

    def __init__(self, node: NodeClient, room: str) -> None:
        super().__init__(node, room)
        self._tracks: list[MediaStreamTrack] = []
        # Each peer connection gets relayed copies: aiortc stops a sender's track when its peer
        # connection closes, and the tracks must outlive one peer to publish again after a lost node.
        self._relay = MediaRelay()

    async def _open(self, tracks: list[MediaStreamTrack]) -> None:
        self._tracks = tracks
        self.joined = await self.node.request("show.create", room=self.room)
        self.peer.add_tracks([self._relay.subscribe(t, buffered=False) for t in tracks])
        answer = await self.node.request("show.publish", room=self.room, sdp=await self.peer.offer())
        await self.peer.accept_answer(answer["sdp"])

    async def _rejoin(self) -> bool:
        """The show starts again on the new node with the same tracks, on a new peer connection."""
        await self.peer.close()
        self.peer = self._new_peer()
        await self._open(self._tracks)
        return True

    async def end(self) -> None:
        """Ends the show for everyone (``show.ended``), then closes."""
        self._check()
        await self.node.request("show.end", room=self.room)
        await self.close()


class Viewing(_Member):
    """A viewer's (or a hidden moderator's) side: the show's tracks arrive in :attr:`peer`."""

    def __init__(self, node: NodeClient, room: str, on_peer: Callable[[Peer], None] | None = None) -> None:
        super().__init__(node, room, on_peer)
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
        self._offers = self.events("show.offer", "show.ended", "show.peer_closed")
        self.node.trace("show_join")
        self.joined = await self.node.request("show.join", room=self.room)
        self.node.trace("show_joined")
        offer = await self._subscribe()
        self.node.trace("offer")
        await self.node.request("show.answer", room=self.room, sdp=await self.peer.answer(offer["sdp"]))
        self.node.trace("answered")
        self._task = asyncio.create_task(self._renegotiate(self._offers), name=f"switchboard_client.view.{self.room}")

    async def _subscribe(self) -> dict[str, Any]:
        """``show.subscribe``, again after ``retry_after`` while the node paces joins (``unavailable``)."""
        for _ in range(30):
            try:
                return await self.node.request("show.subscribe", room=self.room)
            except NodeError as exc:
                if exc.code != "unavailable":
                    raise
                wait = float(exc.frame.get("retry_after") or 1)
                self.node.trace("subscribe_paced", retry_after=wait)
                await asyncio.sleep(random.uniform(wait, wait * 1.5))
        return await self.node.request("show.subscribe", room=self.room)

    async def _rejoin(self) -> bool:
        """Joins on the new node once the show is there (its broadcaster may still be on its way),
        backing off with jitter; after :data:`REJOIN_WINDOW_S` of ``not_found`` the show has ended."""
        if self.ended is not None:  # it ended before the node went (show.ended came): nothing to rejoin
            return False
        await self._stop()
        await self.peer.close()
        self.peer = self._new_peer()
        deadline = time.monotonic() + REJOIN_WINDOW_S
        delay = 0.25
        while True:
            try:
                await self._open()
                return True
            except NodeError as exc:
                if exc.code != "not_found":
                    raise
                self.node.trace("show_not_found")
                if self._offers is not None:
                    self._offers.close()
                if time.monotonic() >= deadline:
                    self.ended = {"type": "show.ended", "room": self.room, "reason": "node lost"}
                    self.node.deliver_local(self.ended)
                    await self.peer.close()
                    return False
            await asyncio.sleep(random.uniform(delay / 2, delay))
            delay = min(delay * 2, 1.0)

    async def _renegotiate(self, offers: EventStream) -> None:
        async for event in offers:
            if event["type"] == "show.ended":
                self.ended = event
                await self.peer.close()
                return
            if event["type"] == "show.peer_closed":
                await self._resubscribe(str(event.get("reason")))
                continue
            try:
                await self.node.request("show.answer", room=self.room, sdp=await self.peer.answer(event["sdp"]))
            except (NodeError, ClosedError) as exc:
                log.warning("show.offer of %s not answered: %r", self.room, exc)
            except Exception:  # aiortc may raise anything: keep following the show
                log.exception("show.offer of %s failed", self.room)

    async def _resubscribe(self, reason: str) -> None:
        """The node closed our peer connection (``show.peer_closed``): subscribe again on the same
        session with a new one, as the watch page does; after ``overloaded`` (the worker shed us) only
        after a jittered pause, so a shed crowd does not come back at once."""
        log.info("peer connection of %s closed by the node (%s): subscribing again", self.room, reason)
        await self.peer.close()
        if reason == "overloaded":
            await asyncio.sleep(random.uniform(OVERLOADED_PAUSE_S, 2 * OVERLOADED_PAUSE_S))
        self.peer = self._new_peer()
        try:
            offer = await self._subscribe()
            await self.node.request("show.answer", room=self.room, sdp=await self.peer.answer(offer["sdp"]))
        except (NodeError, ClosedError) as exc:  # the show ended or the session went: those paths take over
            log.warning("subscribing to %s again failed: %r", self.room, exc)
            return
        self.rejoins += 1
        self.rejoined.set()

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
    show._follow_node()
    return show


async def view_show(node: NodeClient, room: str, on_peer: Callable[[Peer], None] | None = None) -> Viewing:
    """Joins the show and subscribes to its media; ``await viewing.track("video")`` gives the remote track.

    ``on_peer`` is called with each new :class:`Peer` (the first, and the one of each rejoin after a
    lost node) before it negotiates: a load generator registers its own handlers on ``peer.pc`` there."""
    viewing = Viewing(node, room, on_peer)
    try:
        await viewing._open()
    except BaseException:
        await viewing.close()
        raise
    viewing._follow_node()
    return viewing


async def tap_show(node: NodeClient, room: str) -> Viewing:
    """A moderator's hidden view (a ``hidden`` room token): nobody's roster shows it."""
    viewing = await view_show(node, room)
    if not viewing.hidden:
        await viewing.close()
        raise NodeError("forbidden", "a tap needs a hidden (moderator) room token")
    return viewing

