"""Router: one room's media. Owns its transports (peers) and indexes their producers."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from typing import Any

from sfu import clips, router_tick
from sfu.errors import Faults, NegotiationError, NoClip, UnknownPeer, UnknownRoom
from sfu.fanout import Plane
from sfu.keyframes import KEYFRAME_INTERVAL_S, KeyframeSchedule
from sfu.negotiation import ice_ufrag
from sfu.orphans import Orphans
from sfu.pipe import HOST, PipeConsumer, PipeTransport
from sfu.pipe_descriptor import Descriptor
from sfu.pipe_seal import Seal
from sfu.producer import Codec, KeyframeRequester, Producer, visible_consumers
from sfu.simulcast import SimulcastTrack
from sfu.transport import DtlsCertificate, Role, Transport
from sfu.types import EventSink, IceCandidate, PeerId, ProducerStats, RoomStats, SfuListener, party_of
from switchboard.events import EventType, TapEvent
from switchboard.ids import RoomId, UserId

log = logging.getLogger(__name__)

PLI_INTERVAL = 0.5
"""Seconds between two PLIs sent upstream for one producer (requests in between are merged)."""


class Router:
    """Created by the worker when a room is opened (``open_room``), closed by it (close_room, or worker
    close). Every call on a closed router raises :class:`UnknownRoom`; closing again does nothing."""

    def __init__(self, room_id: RoomId, *, addresses: tuple[str, ...], announced: str, events: EventSink,
                 listener: SfuListener | None, keyframe_interval_s: float = KEYFRAME_INTERVAL_S,
                 certificate: DtlsCertificate | None = None, clip_seconds: float = 0.0,
                 plane: Plane | None = None) -> None:
        self.room_id = room_id
        self.plane = plane
        """The worker's native fan-out plane, given to every transport and producer (None: Python path)."""
        self.certificate = certificate
        self.addresses = addresses
        self.announced = announced
        self.events = events
        self.listener = listener
        self.transports: dict[PeerId, Transport] = {}
        self.producers: dict[str, Producer] = {}
        self.tracks: list[SimulcastTrack] = []
        """Simulcast tracks (their exposed layer is in ``producers``): each viewer's layer is chosen per tick."""
        self.pipes: dict[str, PipeTransport] = {}
        self.from_nodes: set[str] = set()
        """Ids of the producers pulled from other nodes: a pipe between nodes carries only this node's own
        publishers (two nodes of one call pull each other's party; nothing goes back where it came from)."""
        self.clip_seconds = clip_seconds
        """Evidence clip length; every publisher's producer buffers this much RTP (0: no buffers)."""
        self.clip_pipes: set[str] = set()
        """Pipes whose imported producers buffer for clips too: a call's far party, pulled from its node,
        so that either party's node makes a clip of the whole call (a show's edges keep no buffer)."""
        self.keyframe_schedule = KeyframeSchedule(keyframe_interval_s)
        """Every publisher's video gets keyframe requests on a fixed period: taps start on them unasked."""
        self._tap_opened_ms: dict[PeerId, int] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self.faults = Faults(log, f"sfu room {room_id}")
        """Exceptions caught in this room's background work (tick, listener callbacks)."""
        self.orphans = Orphans()
        """Viewers' consumers whose producer closed, held for the same track to come back (sfu/orphans.py)."""
        self.closed = False

    # children --------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self.closed:
            raise UnknownRoom(f"room {self.room_id} is closed")

    def _transport(self, peer_id: PeerId, user_id: UserId, role: Role, hidden: bool) -> Transport:
        self._check_open()
        t = Transport(peer_id, user_id, role, hidden=hidden, addresses=self.addresses, announced=self.announced,
                      on_producer=self._producer_added, new_producer=self._new_producer, on_failed=self._failed,
                      certificate=self.certificate, plane=self.plane)
        t.on_first_media = lambda: self._first_media(t)
        self.transports[peer_id] = t
        return t

    def _get(self, peer_id: PeerId) -> Transport:
        self._check_open()
        t = self.transports.get(peer_id)
        if t is None:
            raise UnknownPeer(peer_id)
        return t

    def _new_producer(self, transport: Transport, codec: Codec, ssrc: int) -> Producer:
        loop = asyncio.get_running_loop()
        holder: list[Producer] = []
        requester = KeyframeRequester(lambda: transport.send_pli(holder[0]), PLI_INTERVAL, loop.call_later)
        producer = Producer(f"p{next(self._ids)}", transport.peer_id, codec, ssrc, requester,
                            send_nack=lambda seqs: transport.send_nack(holder[0], seqs))
        if self.clip_seconds > 0:
            producer.clip = clips.ClipBuffer(self.clip_seconds, self.keyframe_schedule.interval, producer.is_keyframe)
        producer.plane = self.plane
        holder.append(producer)
        return producer

    def _producer_added(self, transport: Transport | PipeTransport, producer: Producer) -> None:
        track = producer.simulcast
        shown = track is None or track.exposed is producer  # else: another layer, reached by switching only
        if isinstance(transport, Transport):  # a piped one's keyframes are asked for on its publisher's side
            self.keyframe_schedule.add(producer, time.monotonic())
        if not shown:
            producer.clip = None
        else:
            if track is not None:
                self.tracks.append(track)
            self.producers[producer.producer_id] = producer
        for pipe in self.pipes.values():  # every layer of a simulcast track: the far side chooses too
            if pipe.exporting and not (pipe.sealed and producer.producer_id in self.from_nodes):
                pipe.export(producer)
        if shown:
            if self.orphans and track is None:
                self.orphans.adopt(producer)  # in place: their transports have nothing to renegotiate
            self.ask_renegotiation()

    def _new_piped_producer(self, pipe: PipeTransport, codec: Codec, ssrc: int, producer_id: str) -> Producer:
        loop = asyncio.get_running_loop()
        holder: list[Producer] = []
        requester = KeyframeRequester(lambda: pipe.send_pli(holder[0]), PLI_INTERVAL, loop.call_later)
        if pipe.sealed:  # another node's producer ids may be ours too
            producer_id = f"{pipe.pipe_id}/{producer_id}"
            self.from_nodes.add(producer_id)
        producer = Producer(producer_id, PeerId(""), codec, ssrc, requester)
        if self.clip_seconds > 0 and pipe.pipe_id in self.clip_pipes:
            producer.clip = clips.ClipBuffer(self.clip_seconds, self.keyframe_schedule.interval, producer.is_keyframe)
        producer.plane = self.plane
        holder.append(producer)
        return producer

    def _producer_removed(self, pipe: PipeTransport, producer: Producer) -> None:
        """A piped producer went away on the exporting side: close it here, then its consumers. A layer
        other than its track's exposed one has left the track (``PipeTransport.sync``); its viewers go back
        to the exposed layer."""
        self.producers.pop(producer.producer_id, None)
        self.from_nodes.discard(producer.producer_id)
        track = producer.simulcast
        back = track.exposed if track is not None and track.exposed is not producer else None
        choices = track.choices if track is not None else {}
        forwarding = set(map(id, producer.active))
        if back is None:
            self.orphans.release(producer, self.transports.values(), time.monotonic())
            self.ask_renegotiation()
            return
        for c in producer.close():
            if not back.closed and not isinstance(c, PipeConsumer) and c.consumer_id in choices:
                if id(c) in forwarding:  # it numbers on from the last packet it sent, not an older stop
                    c.stopped()
                c.switch_at_keyframe(back)
            else:
                c.close()

    # pipes (between workers) -------------------------------------------------------------------

    async def open_pipe(self, pipe_id: str, seal: Seal | None = None, host: str = HOST, clip: bool = False) -> int:
        """Create our end of a pipe; returns its UDP port on ``host`` (127.0.0.1 between workers; a pipe
        between nodes binds the node's pipe address and is sealed). ``clip``: the producers it imports
        keep a clip buffer (when clips are on), as this room's own publishers do."""
        self._check_open()
        if pipe_id in self.pipes:
            raise NegotiationError(f"pipe {pipe_id} already exists")
        if clip:
            self.clip_pipes.add(pipe_id)
        pipe = PipeTransport(pipe_id, new_producer=self._new_piped_producer, on_producer=self._producer_added,
                             on_producer_closed=self._producer_removed, seal=seal, host=host)
        port = await pipe.open()
        if self.closed:  # closed while the socket opened: nothing may outlive the room
            pipe.close()
            self._check_open()
        self.pipes[pipe_id] = pipe
        return port

    def connect_pipe(self, pipe_id: str, port: int, export: bool,
                     descriptors: list[Descriptor] | None = None, host: str = HOST) -> list[Descriptor]:
        """Exporting end: pipe every live producer (and later ones), return their descriptors.
        Importing end: create the piped producers now, from the exporting end's descriptors."""
        self._check_open()
        pipe = self.pipes.get(pipe_id)
        if pipe is None:
            raise UnknownPeer(f"no pipe {pipe_id}")
        pipe.connect(port, export=export, host=host)
        if export:
            for p in self._live_producers():
                if not (pipe.sealed and p.producer_id in self.from_nodes):
                    for layer in [p] + ([q for q in p.simulcast.layers if q is not p] if p.simulcast else []):
                        pipe.export(layer)
            return pipe.descriptors()
        pipe.sync(descriptors or [])
        return []

    def close_pipe(self, pipe_id: str) -> None:
        pipe = self.pipes.pop(pipe_id, None)
        self.clip_pipes.discard(pipe_id)
        if pipe is None:
            return
        for producer in pipe.close():
            self._producer_removed(pipe, producer)

    def ask_renegotiation(self) -> None:
        if self.listener is None:
            return
        for t in self.transports.values():
            if t.role is Role.SUBSCRIBER and not t.closed:
                self._spawn(self.listener.renegotiation_needed(self.room_id, t.peer_id))

    def _first_media(self, transport: Transport) -> None:
        """The first packet went out to this subscriber (the transport calls this once)."""
        if self.listener is not None and self.transports.get(transport.peer_id) is transport:
            self._spawn(self.listener.first_media(self.room_id, transport.peer_id))

    def _failed(self, transport: Transport, reason: str) -> None:
        """A peer connection died on its own (``failed``, or ``closed`` under us): close it, say why."""
        if self.transports.get(transport.peer_id) is transport:
            self._spawn(self._close_failed(transport, reason))

    def shed(self, transport: Transport) -> None:
        """Close a peer to relieve an overloaded worker; its owner hears ``peer_closed`` (``overloaded``)."""
        self._failed(transport, "overloaded")

    async def _close_failed(self, transport: Transport, reason: str) -> None:
        log.info("sfu peer %s closed: %s", transport.peer_id, reason, extra={"room": self.room_id})
        await self.close_peer(transport.peer_id)
        if self.listener is not None:
            await self.listener.peer_closed(self.room_id, transport.peer_id, reason)

    def _spawn(self, coro) -> None:  # type: ignore[no-untyped-def]
        task = asyncio.ensure_future(self._guarded(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, coro) -> None:  # type: ignore[no-untyped-def]
        try:
            await coro
        except Exception as exc:  # a listener's failure must not go unseen, nor reach the media
            self.faults.caught(exc)

    # MediaService, for one room --------------------------------------------------------------

    async def publish(self, peer_id: PeerId, user_id: UserId, offer_sdp: str) -> str:
        self._check_open()
        t = self.transports.get(peer_id)
        fresh = t is None
        if t is None:
            t = self._transport(peer_id, user_id, Role.PUBLISHER, False)
        elif t.role is not Role.PUBLISHER:
            raise NegotiationError("peer is a subscriber")
        elif t.pc.remoteDescription is not None and ice_ufrag(offer_sdp) != ice_ufrag(t.pc.remoteDescription.sdp):
            # A new peer connection from the same peer (a reloaded page that resumed its session):
            # aiortc cannot ICE-restart, so the old transport and its producers make way for a new one.
            await self.close_peer(peer_id)
            t, fresh = self._transport(peer_id, user_id, Role.PUBLISHER, False), True
        try:
            answer = await t.answer_offer(offer_sdp)
        except NegotiationError:
            if fresh:
                await self.close_peer(peer_id)
            self._check_open()  # the room closed under it: say so rather than "bad offer"
            raise
        self._check_open()  # closed while we negotiated: close() closed the peer too
        return answer

    async def subscribe(self, peer_id: PeerId, user_id: UserId, hidden: bool) -> str:
        self._check_open()
        if peer_id in self.transports:
            raise NegotiationError("peer already exists")
        t = self._transport(peer_id, user_id, Role.SUBSCRIBER, hidden)
        try:
            offer = await t.make_offer(self._live_producers(peer_id))
        except NegotiationError:
            await self.close_peer(peer_id)
            self._check_open()
            raise
        self._check_open()
        if hidden:
            await self._emit(EventType.TAP_OPENED, t)
        return offer or ""

    async def accept_answer(self, peer_id: PeerId, answer_sdp: str) -> None:
        t = self._get(peer_id)
        await t.accept_answer(answer_sdp)
        if t.needs_offer and self.listener is not None and not t.closed:
            # The room changed while our offer waited for this answer: offer what it missed now.
            self._spawn(self.listener.renegotiation_needed(self.room_id, peer_id))

    async def renegotiate(self, peer_id: PeerId) -> str | None:
        """A new offer, or None: nothing changed, or an offer is pending (then ``accept_answer`` asks
        the listener again once its answer is in)."""
        t = self._get(peer_id)
        if t.role is not Role.SUBSCRIBER:
            return None
        if t.offer_pending():
            t.needs_offer = True
            return None
        return await t.make_offer(self._live_producers(peer_id))

    async def add_ice_candidate(self, peer_id: PeerId, candidate: IceCandidate | None) -> None:
        await self._get(peer_id).add_ice_candidate(candidate)

    def _live_producers(self, subscriber: PeerId | None = None) -> list[Producer]:
        """Open producers; for a ``subscriber``, not the ones its own party publishes here (a 1:1 call's
        party publishes and subscribes in the same room and must not get its own camera back)."""
        return [p for p in self.producers.values() if not p.closed and not self._published_by(p, subscriber)]

    @staticmethod
    def _published_by(producer: Producer, subscriber: PeerId | None) -> bool:
        return subscriber is not None and party_of(producer.peer_id) == party_of(subscriber)

    async def close_peer(self, peer_id: PeerId) -> None:
        t = self.transports.pop(peer_id, None)
        if t is None:
            return
        producers = await t.close()
        for p in producers:
            self.producers.pop(p.producer_id, None)
            self.keyframe_schedule.remove(p)
            self.orphans.release(p, self.transports.values(), time.monotonic())
        if producers:
            self.ask_renegotiation()
        if t.hidden:
            await self._emit(EventType.TAP_CLOSED, t)

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for pipe_id in list(self.pipes):
            self.close_pipe(pipe_id)
        # Taps first: their tap_closed still names the room's publishers.
        for peer_id in sorted(self.transports, key=lambda p: not self.transports[p].hidden):
            await self.close_peer(peer_id)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def clip_tracks(self) -> list[clips.TrackSnapshot]:
        """Every buffered track of the room's publishers (hidden or not), for an evidence clip."""
        self._check_open()
        tracks = clips.snapshot(list(self.producers.values()))
        if not tracks:
            raise NoClip(f"room {self.room_id} has no buffered media"
                         + ("" if self.clip_seconds > 0 else " (clips are off: sfu.clip_seconds = 0)"))
        return tracks

    def stats(self) -> RoomStats:
        visible = [t for t in self.transports.values() if not t.hidden]
        producers = tuple(
            ProducerStats(producer_id=p.producer_id, peer_id=p.peer_id, kind=p.kind, mime_type=p.codec.mime_type,
                          packets_received=p.packets_received,
                          consumers=visible_consumers(p))
            for p in self._live_producers())
        forwarded = sum(c.packets for t in visible for c in t.consumers.values())
        return RoomStats(room_id=self.room_id,
                         publishers=sum(1 for t in visible if t.role is Role.PUBLISHER and t.producers),
                         viewers=sum(1 for t in visible if t.role is Role.SUBSCRIBER),
                         producers=producers, packets_forwarded=forwarded)

    def set_max_layer(self, peer_id: PeerId, max_layer: int | None) -> int:
        """A viewer's cap on its simulcast layers (0 lowest; None: none), on each of its simulcast
        tracks; returns how many tracks it capped (0 when the room sends none in simulcast)."""
        capped = 0
        for c in self._get(peer_id).consumers.values():
            track = c.producer.simulcast
            if track is not None and c.consumer_id in track.choices:
                track.set_max_layer(c.consumer_id, max_layer)
                capped += 1
        return capped

    def link_stats(self, peer_id: PeerId) -> dict[str, Any]:
        """One peer's own link as the SFU sees it (its bandwidth estimate): for that peer only."""
        return self._get(peer_id).link_stats()

    def tick(self) -> None:
        """Once a second (the worker's ticker): :func:`sfu.router_tick.tick`."""
        router_tick.tick(self)

    async def _emit(self, kind: EventType, t: Transport) -> None:
        """A tap's audit fact: who (the moderator), what (the room, whose media), when (opened, closed)."""
        now_ms = int(time.time() * 1000)
        if kind is EventType.TAP_OPENED:
            self._tap_opened_ms[t.peer_id] = now_ms
            opened = None
        else:
            opened = self._tap_opened_ms.pop(t.peer_id, None)
        publishers = tuple(dict.fromkeys(
            p.user_id for p in self.transports.values() if p.role is Role.PUBLISHER and not p.hidden))
        try:
            await self.events.emit(TapEvent(kind, moderator=t.user_id, room=self.room_id, peer=t.peer_id,
                                            at_ms=now_ms, publishers=publishers[:64], opened_at_ms=opened))
        except Exception:  # a bad field or an event store outage must not break media
            log.exception("sfu event %s lost", kind)
