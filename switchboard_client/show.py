"""Shows (1:many through the SFU): publish one from aiortc tracks, view one, or tap one as a moderator.

Each object is opened by one call (:func:`publish_show`, :func:`view_show`, :func:`tap_show`) and
closed by ``close()`` (idempotent: it leaves the show and closes the peer connection). The node
client's token must be a room token for the show's room (``broadcaster`` to publish, ``viewer`` to
watch, ``hidden`` for a moderator's tap): docs/protocol.md, "Shows".

After a lost node (or a drain) the node client starts a new session elsewhere; a show's member then
joins again by itself on the new node (a new peer connection; ``rejoins`` counts it). A
viewer whose peer connection the node closed (``show.peer_closed``: it died, or the worker shed it)
subscribes again on the same session with a new one, counted the same way.
The broadcaster creates the show again there (the API places the room's clients on one live node). A
viewer asks to join until the show is back, for up to :data:`REJOIN_WINDOW_S`; then the show has ended
for it with reason ``node lost`` (``show.ended`` on its event streams: the dead node could not say it).

A drain's move is make-before-break for a viewer (and a tap): the old socket stays open
(switchboard_client/handover.py), the viewer joins on the new session with a new peer connection
while the old one keeps receiving, and switches (:attr:`Viewing.peer`, then the old one closes) once
the new one delivered its first frame (to a track of :meth:`Viewing.track`) or, when nobody reads those,
its first RTP packet (``Peer.media``). A new join that fails leaves the old media playing until the
handover's bound (``MOVE_OVERLAP_S``), then the viewer joins again as after a lost node. The
broadcaster moves as after a lost node (its old peer connection closes first).
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
from switchboard_client.handover import Handover
from switchboard_client.member import Member as _Member
from switchboard_client.node import NodeClient
from switchboard_client.peer import Peer
from switchboard_client.relay import TrackRelay

log = logging.getLogger("switchboard_client.show")

REJOIN_WINDOW_S = 20.0
"""How long a viewer that lost its node keeps asking to join again (the show comes back when its
broadcaster has reconnected and published again) before the show counts as ended (``node lost``)."""


OVERLOADED_PAUSE_S = 1.0
"""A viewer the node shed (``show.peer_closed``, ``overloaded``) subscribes again after 1-2 s."""
RTP_POLL_S = 0.05
"""During a move, how often a new peer connection's ``getStats()`` is read for its first RTP packet
(only when no track of :meth:`Viewing.track` is read: then its first frame tells)."""


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
        self.node.trace("show_create")
        self.joined = await self.node.request("show.create", room=self.room)
        self.peer.add_tracks([self._relay.subscribe(t, buffered=False) for t in tracks])
        pc = self.peer.pc

        @pc.on("connectionstatechange")
        def connected() -> None:
            if pc.connectionState == "connected":
                self.node.trace("publish_connected")
        answer = await self.node.request("show.publish", room=self.room, sdp=await self.peer.offer())
        await self.peer.accept_answer(answer["sdp"])
        self.node.trace("published")

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
        self._relays: dict[str, TrackRelay] = {}
        """Kind -> the relay of the tracks :meth:`track` gave (made at its first call)."""
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
        """The current peer connection's remote tracks (they end with it: :meth:`track` does not)."""
        return self.peer.tracks

    async def track(self, kind: str = "video") -> MediaStreamTrack:
        """The show's ``kind`` frames, waiting for the broadcaster to publish them: a track that stays
        the same through every peer connection of this viewing (a drain's move shows no gap; a lost
        node, a gap until the new connection's first frame). Each call gives a new consumer's track,
        with every frame from then on; its ``generation`` tells which connection a frame came from
        (timestamps start again at each). It ends (``MediaStreamError``) when the viewing closes."""
        self._check()
        relay = self._relays.get(kind)
        if relay is None:
            relay = self._relays[kind] = TrackRelay(kind)
            self._feed(self.peer, {kind: relay})
        while True:
            try:
                await self.peer.track(kind)
                break
            except ClosedError:  # a rejoin replaces the peer meanwhile
                self._check()
                await asyncio.sleep(0.05)
        return relay.track()

    def _new_peer(self) -> Peer:
        peer = super()._new_peer()
        self._feed(peer, self._relays)
        return peer

    def _feed(self, peer: Peer, relays: dict[str, TrackRelay]) -> None:
        """Each relay follows every track of its kind ``peer`` receives: the first, and each one a
        renegotiation adds (the broadcaster published again here: its origin was drained or lost and
        this node's copy became the show); the newest switches in at its first frame."""
        def follow(track: MediaStreamTrack) -> None:
            relay = relays.get(track.kind)
            if relay is not None:
                relay.follow(track, peer)

        peer.watch_tracks(follow)

    async def _open(self, peer: Peer | None = None) -> None:
        """Joins and subscribes on the node client's session with ``peer`` (the current one by
        default), then answers that session's renegotiations on ``peer`` (during a move too: the show's
        broadcaster may publish again on the new node before the new peer connection has media)."""
        peer = peer or self.peer
        # Listen before asking: the node may send show.offer right after our first answer.
        self._offers = self.events("show.offer", "show.ended", "show.peer_closed")
        self.node.trace("show_join")
        self.joined = await self.node.request("show.join", room=self.room)
        self.node.trace("show_joined")
        offer = await self._subscribe()
        self.node.trace("offer")
        await self.node.request("show.answer", room=self.room, sdp=await peer.answer(offer["sdp"]))
        self.node.trace("answered")
        self._task = asyncio.create_task(self._renegotiate(self._offers, peer),
                                         name=f"switchboard_client.view.{self.room}")

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
        handover = self.node.handover
        if handover is not None and handover.waits_for(self):
            try:
                if await self._switch(handover):
                    return True
            except (NodeError, ClosedError) as exc:
                log.warning("could not join %s on the new node: %r", self.room, exc)
            except Exception:  # aiortc may raise anything
                log.exception("joining %s on the new node failed", self.room)
            await handover.done.wait()  # the old media play on until the bound; then as after a lost node
            if self._closed:
                return False
        await self._stop()
        await self.peer.close()
        self.peer = self._new_peer()
        if await self._open_when_there(self.peer, until=time.monotonic() + REJOIN_WINDOW_S):
            return True
        self.ended = {"type": "show.ended", "room": self.room, "reason": "node lost"}
        self.node.deliver_local(self.ended)
        await self.peer.close()
        return False

    async def _open_when_there(self, peer: Peer, *, until: float | None = None,
                               ended: asyncio.Event | None = None) -> bool:
        """:meth:`_open` on the node client's session, asked again while the show is not there yet
        (``not_found``: its broadcaster has not published on that node), 0.25 s doubling to 1 s apart
        (each wait drawn between half and all of it); False when it still is not at ``until``
        (``time.monotonic()``) or once ``ended`` is set. Any other error is raised."""
        delay = 0.25
        while True:
            try:
                await self._open(peer)
                return True
            except NodeError as exc:
                if exc.code != "not_found":
                    raise
                self.node.trace("show_not_found")
                if self._offers is not None:
                    self._offers.close()
                if (until is not None and time.monotonic() >= until) or (ended is not None and ended.is_set()):
                    return False
            wait = random.uniform(delay / 2, delay)
            if ended is None:
                await asyncio.sleep(wait)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ended.wait(), wait)
            delay = min(delay * 2, 1.0)

    async def _switch(self, handover: Handover) -> bool:
        """A drain's move, make-before-break: joins on the new session with a new peer connection while
        the old one keeps receiving (the old socket is open), switches :attr:`peer` once the new one has
        media (``Peer.media``) or the handover's bound passed, then closes the old one and tells the
        handover. False: the show was not there before the bound (``not_found``); raises when the join
        failed otherwise. Either way the old peer connection is kept."""
        await self._stop()  # the old session's events are no longer delivered: its offers end here
        new = self._new_peer()
        switching = False
        try:
            if not await self._open_when_there(new, ended=handover.done):
                return False
            await self._first_media(new, handover)
            switching = True
        finally:
            if not switching:  # not there, failed, or the viewing closed meanwhile
                if self._offers is not None:
                    self._offers.close()
                await new.close()
        old, self.peer = self.peer, new
        await old.close()
        handover.switched(self)
        self.node.trace("switched", media=new.media.is_set())
        return True

    async def _first_media(self, peer: Peer, handover: Handover) -> None:
        """Until ``peer`` has media (its first frame to a relay, else its first RTP) or the handover ends."""
        poll = None if self._relays else asyncio.ensure_future(self._first_rtp(peer))
        media, done = asyncio.ensure_future(peer.media.wait()), asyncio.ensure_future(handover.done.wait())
        try:
            await asyncio.wait([media, done], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (media, done, poll):
                if task is not None:
                    task.cancel()

    @staticmethod
    async def _first_rtp(peer: Peer) -> None:
        while not peer.media.is_set() and not peer.closed:
            for stats in (await peer.pc.getStats()).values():
                if stats.type == "inbound-rtp" and int(getattr(stats, "packetsReceived", 0) or 0) > 0:
                    peer.media.set()
            await asyncio.sleep(RTP_POLL_S)

    async def _renegotiate(self, offers: EventStream, peer: Peer) -> None:
        """Follows the show on ``peer``'s session: its offers are answered on ``peer``."""
        async for event in offers:
            if event["type"] == "show.ended":
                self.ended = event
                await peer.close()
                return
            if event["type"] == "show.peer_closed":
                await self._resubscribe(str(event.get("reason")))
                continue
            try:
                await self.node.request("show.answer", room=self.room, sdp=await peer.answer(event["sdp"]))
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

    async def close(self) -> None:
        if self._closed:
            return
        self.node.remove_switcher(self)
        await super().close()
        for relay in self._relays.values():
            await relay.close()


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
    """Joins the show and subscribes to its media; ``await viewing.track("video")`` gives its video, on
    one track through every peer connection of the viewing (a drain's move included).

    ``on_peer`` is called with each new :class:`Peer` (the first, and the one of each rejoin after a
    lost node or a drain) before it negotiates: a load generator registers its own handlers on
    ``peer.pc`` there (one that never decodes sets ``peer.media`` at its first RTP: a drain's move then
    switches at once instead of at the handover's bound)."""
    viewing = Viewing(node, room, on_peer)
    try:
        await viewing._open()
    except BaseException:
        await viewing.close()
        raise
    node.add_switcher(viewing)
    viewing._follow_node()
    return viewing


async def tap_show(node: NodeClient, room: str) -> Viewing:
    """A moderator's hidden view (a ``hidden`` room token): nobody's roster shows it."""
    viewing = await view_show(node, room)
    if not viewing.hidden:
        await viewing.close()
        raise NodeError("forbidden", "a tap needs a hidden (moderator) room token")
    return viewing

