"""Worker: one event loop's SFU (one core). Owns the routers of the rooms placed on it.

This is the in-process :class:`sfu.types.MediaService`; :mod:`sfu.pool` runs one per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from typing import Any

from sfu import aiortc_private
from sfu.admission import BURST_IN_FLIGHT, Admission, LoopLag
from sfu.clips import Clip
from sfu.errors import Faults, NoClip, SfuError, UnknownRoom
from sfu.fanout import open_plane
from sfu.keyframes import KEYFRAME_INTERVAL_S
from sfu.pipe import HOST
from sfu.pipe_descriptor import Descriptor
from sfu.pipe_seal import Seal
from sfu.remux import NothingToClip, write_clip
from sfu.router import Router
from sfu.transport import DtlsCertificate, Role
from sfu.types import EventSink, FanoutConfig, IceCandidate, PeerId, RoomStats, SfuListener
from switchboard.ids import RoomId, UserId

log = logging.getLogger(__name__)

TICK_S = 1.0
"""Period of RTCP reports (SR/RR/REMB) and of keyframe re-requests for waiting consumers."""
SHED_LAG_S = 0.5
"""Loop lateness above which the worker cannot keep up with its transports (see :meth:`Worker._relieve`)."""
SHED_AFTER_TICKS = 3
"""Consecutive late ticks before subscribers are shed."""
SHED_FRACTION = 0.1
"""Share of the worker's subscribers shed at once (at least one), the newest first."""


class Worker:
    """``await start()`` then use; ``await close()`` closes every room (safe twice).

    Rooms are opened by :meth:`open_room` only; every other call on a room that is not open (never
    opened, or closed) raises :class:`UnknownRoom`, except the closing calls, which do nothing.
    """

    def __init__(self, *, addresses: tuple[str, ...], announced: str = "", events: EventSink,
                 tick_s: float = TICK_S, keyframe_interval_s: float = KEYFRAME_INTERVAL_S,
                 clip_seconds: float = 0.0, pipe_secret: bytes = b"", pipe_host: str = "",
                 fanout: FanoutConfig | None = None) -> None:
        aiortc_private.check_versions()
        # This process's aiortc receivers (a subscriber's, never fed): the same REMB, ~0.9 ms less to build each.
        aiortc_private.use_quick_rate_estimation()
        self._pipe_seal = Seal(pipe_secret) if pipe_secret else None
        """Seals pipes between nodes (``cascade.secret``); None: this worker opens none."""
        self.pipe_host = pipe_host or (addresses[0] if addresses else HOST)
        """The address pipes between nodes bind (``cascade.pipe_address``, else the first RTC address)."""
        self.fanout = fanout if fanout is not None else FanoutConfig()
        self.plane = open_plane(self.fanout)
        """The native fan-out of this worker's rooms (None: the Python path; see sfu.fanout)."""
        self.addresses = addresses
        self.keyframe_interval_s = keyframe_interval_s
        self.clip_seconds = clip_seconds
        self.announced = announced
        self.events = events
        self.tick_s = tick_s
        self.listener: SfuListener | None = None
        self.routers: dict[RoomId, Router] = {}
        self.certificate = DtlsCertificate()
        """One DTLS key and certificate for every peer connection of this worker."""
        self.lag = LoopLag()
        self.admission = Admission(self.lag, burst_in_flight=BURST_IN_FLIGHT)
        """Joins are paced (bounded in flight, admitted only while the loop keeps time; see sfu.admission)."""
        self.shed_lag_s = SHED_LAG_S
        self.shed = 0
        """Subscribers closed because the worker could not keep up (``peer_closed`` reason ``overloaded``)."""
        self._late_ticks = 0
        self.ticks = 0
        self.tick_faults = Faults(log, "sfu ticker")
        """Exceptions a room's tick let out: counted, logged once per kind; the ticker goes on."""
        self._ticker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick())
        self.lag.start()

    async def close(self) -> None:
        await self.lag.close()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        for room_id in list(self.routers):
            await self.close_room(room_id)
        if self.plane is not None:
            self.plane.close()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            self.ticks += 1
            try:
                self._relieve()
            except Exception as exc:
                self.tick_faults.caught(exc)
            for router in list(self.routers.values()):
                try:
                    router.tick()
                except Exception as exc:  # one room's bug must not stop RTCP, NACKs and ICE for the others
                    self.tick_faults.caught(exc)

    def _relieve(self) -> None:
        """Shed subscribers while the loop stays late: a worker that cannot keep up delays every packet
        of every transport (the publisher's STUN consent checks included: it would close after ~30 s of
        them going unanswered, ending the show for all). Newest subscribers go first; publishers and
        hidden taps are never shed; new joins are already held back by :attr:`admission`."""
        if self.lag.recent <= self.shed_lag_s:
            self._late_ticks = 0
            return
        self._late_ticks += 1
        if self._late_ticks < SHED_AFTER_TICKS:
            return
        self._late_ticks = 0
        subscribers = [(router, t) for router in self.routers.values() for t in router.transports.values()
                       if t.role is Role.SUBSCRIBER and not t.hidden and not t.closed]
        if not subscribers:
            return
        count = max(1, math.ceil(len(subscribers) * SHED_FRACTION))
        log.warning("sfu worker %.2f s late for %d ticks: shedding %d of %d subscribers", self.lag.recent,
                    SHED_AFTER_TICKS, count, len(subscribers))
        for router, t in subscribers[-count:]:
            router.shed(t)
        self.shed += count

    def set_listener(self, listener: SfuListener | None) -> None:
        self.listener = listener
        for router in self.routers.values():
            router.listener = listener

    async def open_room(self, room_id: RoomId) -> None:
        """Open a room (its router). Opening an open room does nothing."""
        if room_id not in self.routers:
            self.routers[room_id] = Router(room_id, addresses=self.addresses, announced=self.announced,
                                           events=self.events, listener=self.listener,
                                           keyframe_interval_s=self.keyframe_interval_s, certificate=self.certificate,
                                           clip_seconds=self.clip_seconds, plane=self.plane)

    def router(self, room_id: RoomId) -> Router:
        """The open room's router; never creates one."""
        router = self.routers.get(room_id)
        if router is None:
            raise UnknownRoom(f"room {room_id} is not open on this worker")
        return router

    async def publish(self, room_id: RoomId, peer_id: PeerId, user_id: UserId, offer_sdp: str) -> str:
        return await self.router(room_id).publish(peer_id, user_id, offer_sdp)

    async def add_ice_candidate(self, room_id: RoomId, peer_id: PeerId, candidate: IceCandidate | None) -> None:
        await self.router(room_id).add_ice_candidate(peer_id, candidate)

    async def subscribe(self, room_id: RoomId, peer_id: PeerId, user_id: UserId, *, hidden: bool = False) -> str:
        """A new subscriber's offer, once :attr:`admission` lets the join in (raises ``Busy`` if it cannot);
        its slot is held until its connection is up (or failed, or closed)."""
        self.router(room_id)  # an unknown room fails before waiting for a slot
        ticket = await self.admission.enter()
        try:
            router = self.router(room_id)
            offer = await router.subscribe(peer_id, user_id, hidden)
        except BaseException:
            ticket.release()
            raise
        t = router.transports.get(peer_id)
        if t is None:  # closed meanwhile
            ticket.release()
            return offer
        pc = t.pc

        @pc.on("connectionstatechange")
        def _settled() -> None:
            if pc.connectionState in ("connected", "failed", "closed"):
                ticket.release()

        return offer

    async def accept_answer(self, room_id: RoomId, peer_id: PeerId, answer_sdp: str) -> None:
        await self.router(room_id).accept_answer(peer_id, answer_sdp)

    async def renegotiate(self, room_id: RoomId, peer_id: PeerId) -> str | None:
        return await self.router(room_id).renegotiate(peer_id)

    async def close_peer(self, room_id: RoomId, peer_id: PeerId) -> None:
        router = self.routers.get(room_id)
        if router is not None:
            await router.close_peer(peer_id)

    async def close_room(self, room_id: RoomId) -> None:
        router = self.routers.pop(room_id, None)
        if router is not None:
            await router.close()

    async def open_pipe(self, room_id: RoomId, pipe_id: str) -> int:
        return await self.router(room_id).open_pipe(pipe_id)

    async def connect_pipe(self, room_id: RoomId, pipe_id: str, port: int, export: bool,
                           descriptors: list[Descriptor] | None = None) -> list[Descriptor]:
        return self.router(room_id).connect_pipe(pipe_id, port, export, descriptors)

    async def close_pipe(self, room_id: RoomId, pipe_id: str) -> None:
        router = self.routers.get(room_id)
        if router is not None:
            router.close_pipe(pipe_id)

    # pipes between nodes (the cascade, docs/scaling.md) ------------------------------------------

    async def open_node_pipe(self, room_id: RoomId, pipe_id: str, clip: bool = False) -> int:
        """Our end of a sealed pipe to another node, bound on :attr:`pipe_host`; returns its UDP port.
        ``clip``: what it imports keeps a clip buffer (a call's far party)."""
        if self._pipe_seal is None:
            raise SfuError("pipes between nodes need a shared secret (cascade.secret)")
        return await self.router(room_id).open_pipe(pipe_id, self._pipe_seal, self.pipe_host, clip)

    async def connect_node_pipe(self, room_id: RoomId, pipe_id: str, host: str, port: int, export: bool,
                                descriptors: list[Descriptor] | None = None) -> list[Descriptor]:
        """Joins our end to the far node's (``host:port``, from its registry entry and its reply).
        Exporting: pipes every producer of the room (later ones too), returns their descriptors."""
        return self.router(room_id).connect_pipe(pipe_id, port, export, descriptors, host=host)

    async def close_node_pipe(self, room_id: RoomId, pipe_id: str) -> None:
        await self.close_pipe(room_id, pipe_id)

    async def node_pipes(self, room_id: RoomId) -> list[str]:
        """The room's live pipes between nodes (a silent one is closed by the router's tick)."""
        router = self.routers.get(room_id)
        return [] if router is None else [p.pipe_id for p in router.pipes.values() if p.sealed and not p.closed]

    async def save_clip(self, room_id: RoomId) -> Clip:
        """The last ``clip_seconds`` of every track of the room in one file (remuxed in a thread).
        :class:`NoClip` when the room has nothing buffered."""
        router = self.router(room_id)
        tracks = router.clip_tracks()
        try:
            return await asyncio.to_thread(write_clip, tracks, router.clip_seconds)
        except NothingToClip as exc:
            raise NoClip(f"room {room_id}: {exc}") from None

    async def set_max_layer(self, room_id: RoomId, peer_id: PeerId, max_layer: int | None) -> int:
        """A viewer's cap on its simulcast layers (see ``Router.set_max_layer``)."""
        return self.router(room_id).set_max_layer(peer_id, max_layer)

    async def link_stats(self, room_id: RoomId, peer_id: PeerId) -> dict[str, Any]:
        """What ``peer_id`` may see of its own link (see ``Transport.link_stats``); never another's."""
        return self.router(room_id).link_stats(peer_id)

    async def room_stats(self, room_id: RoomId) -> RoomStats:
        return self.router(room_id).stats()
