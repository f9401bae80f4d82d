"""The SFU's public face: what signaling (and tests, and the node) may depend on.

Who calls what, and when:

* Signaling owns one :class:`MediaService` per node (the node creates it: an in-process
  :class:`sfu.worker.Worker` for one core, or :class:`sfu.pool.WorkerPool` for ``--workers N``)
  and calls it from the WebSocket handlers of the room's participants.
* A room is opened by :meth:`MediaService.open_room` (signaling does it when a show or a call starts);
  nothing else creates one, and a call on a room that is not open raises ``UnknownRoom``.
* A **publisher** sends an SDP offer: signaling calls :meth:`MediaService.publish` and sends back
  the SDP answer it returns. aiortc does not trickle: the answer already carries every server
  candidate. Candidates the browser trickles afterwards go to :meth:`MediaService.add_ice_candidate`
  (``None`` means end-of-candidates). Publishing again on the same peer id is a renegotiation.
* A **viewer** (or a hidden moderator tap, ``hidden=True``) calls :meth:`MediaService.subscribe`:
  the server makes the SDP offer, signaling relays it and gives the client's answer to
  :meth:`MediaService.accept_answer`.
* When a room's set of producers changes, the SFU calls
  :meth:`SfuListener.renegotiation_needed` for each subscriber; signaling then calls
  :meth:`MediaService.renegotiate` to get a fresh offer (``None`` if nothing changed any more),
  relays it, and hands the answer to :meth:`MediaService.accept_answer`.
* :meth:`MediaService.close_peer` when a socket goes away or a participant leaves;
  :meth:`MediaService.close_room` when a show ends. Both are safe to call twice.
* :meth:`MediaService.room_stats` answers participants: it never counts or lists hidden peers.
* :meth:`MediaService.link_stats` answers one peer about its own link (signaling never names another).
* Tap opened/closed are durable facts: the SFU hands them (:class:`switchboard.events.TapEvent`, the
  schema the control API reads too) to an :class:`EventSink` (in production
  :class:`sfu.events.RedisEventSink`, XADD to ``switchboard.keyspace.EVENTS_STREAM``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NewType, Protocol, runtime_checkable

from switchboard.events import TapEvent
from switchboard.ids import RoomId, UserId

if TYPE_CHECKING:
    from sfu.clips import Clip

PeerId = NewType("PeerId", str)
"""One peer connection of one participant in one room (signaling picks it, unique per room)."""


def party_of(peer_id: PeerId) -> str:
    """The session a peer belongs to: signaling names peers ``<session>`` (a show member) or
    ``<session>.<leg>`` (a call party's publish and subscribe legs). A subscriber never gets back the
    media of its own party; another session of the same user (a host watching from a phone) does."""
    return peer_id.split(".", 1)[0]


@dataclass(frozen=True)
class IceCandidate:
    """A trickled ICE candidate from a client, as the browser's RTCIceCandidate gives it."""

    candidate: str
    """The ``candidate:...`` attribute (with or without the ``a=`` prefix)."""
    sdp_mid: str | None = None
    """The media section id it belongs to (bundle: any of them)."""
    sdp_mline_index: int | None = None
    """The media section index, used when ``sdp_mid`` is absent."""


@dataclass(frozen=True)
class ProducerStats:
    """One published track, as participants may see it."""

    producer_id: str
    """Stable id of the track inside the room."""
    peer_id: PeerId
    """The publisher."""
    kind: str
    """``audio`` or ``video``."""
    mime_type: str
    """Codec, e.g. ``video/VP8``."""
    packets_received: int
    """RTP packets received from the publisher."""
    consumers: int
    """Visible consumers of this track (hidden taps are never counted)."""


@dataclass(frozen=True)
class RoomStats:
    """A room as participants may see it: hidden peers never appear, in any count."""

    room_id: RoomId
    """The room."""
    publishers: int
    """Peers that publish at least one track."""
    viewers: int
    """Visible subscribing peers."""
    producers: tuple[ProducerStats, ...] = field(default_factory=tuple)
    """Every published track."""
    packets_forwarded: int = 0
    """RTP packets sent to visible consumers."""


class EventSink(Protocol):
    """Where durable SFU facts go (Redis stream in production, a list in unit tests)."""

    async def emit(self, event: TapEvent) -> None:
        """Record one event; must not raise for transient failures (log and count instead)."""


class SfuListener(Protocol):
    """Signaling's side of the conversation: the SFU calls these, never blocks on them."""

    async def renegotiation_needed(self, room_id: RoomId, peer_id: PeerId) -> None:
        """The subscriber ``peer_id`` has new (or fewer) tracks: call ``renegotiate`` soon."""

    async def peer_closed(self, room_id: RoomId, peer_id: PeerId, reason: str) -> None:
        """The SFU closed this peer on its own; tell the client. Sent every time a peer connection dies,
        publisher or subscriber: ``reason`` is ``ice-failed``, ``dtls-failed``, ``closed`` (the DTLS
        transport ended) or ``worker-lost``."""

    async def first_media(self, room_id: RoomId, peer_id: PeerId) -> None:
        """The first RTP packet was forwarded to the subscriber ``peer_id`` (once per peer connection;
        never for a hidden peer): the end of its join (join-to-first-frame)."""


class MediaService(Protocol):
    """The SFU as signaling drives it. Every method may raise :class:`sfu.errors.SfuError`."""

    def set_listener(self, listener: SfuListener | None) -> None:
        """Install signaling's callbacks (once, before the first peer)."""

    async def open_room(self, room_id: RoomId) -> None:
        """Open a room (a show, a call): the only call that creates one. Opening an open room does nothing.
        Every other call on a room that is not open (never opened, or closed) raises ``UnknownRoom``,
        except ``close_peer`` and ``close_room``, which then do nothing."""

    async def publish(self, room_id: RoomId, peer_id: PeerId, user_id: UserId, offer_sdp: str) -> str:
        """A publisher's SDP offer in, the SDP answer (with all server candidates) out."""

    async def add_ice_candidate(self, room_id: RoomId, peer_id: PeerId, candidate: IceCandidate | None) -> None:
        """A candidate trickled by the client for this peer; ``None`` is end-of-candidates."""

    async def subscribe(self, room_id: RoomId, peer_id: PeerId, user_id: UserId, *, hidden: bool = False) -> str:
        """Open a subscriber (viewer, or a tap when ``hidden``) of every producer of the room; returns the
        server's SDP offer. A hidden subscriber (a tap) emits ``tap_opened``, is invisible to everyone else,
        never asks the publishers for a keyframe (it starts at the next scheduled one) and none of its
        RTCP goes upstream."""

    async def accept_answer(self, room_id: RoomId, peer_id: PeerId, answer_sdp: str) -> None:
        """The client's SDP answer to the last offer from ``subscribe`` or ``renegotiate``."""

    async def renegotiate(self, room_id: RoomId, peer_id: PeerId) -> str | None:
        """A new offer for a subscriber whose room changed, or ``None`` when it is already up to date."""

    async def close_peer(self, room_id: RoomId, peer_id: PeerId) -> None:
        """Close one peer and everything it owns (producers close their consumers). Idempotent."""

    async def close_room(self, room_id: RoomId) -> None:
        """Close every peer of the room and forget it. Idempotent."""

    async def room_stats(self, room_id: RoomId) -> RoomStats:
        """Counts and tracks as participants may see them (never hidden peers)."""

    async def link_stats(self, room_id: RoomId, peer_id: PeerId) -> dict[str, Any]:
        """``peer_id``'s own link as the SFU sees it, for that peer only: ``available_outgoing_bitrate``
        (bit/s, None before any feedback), ``estimate_source`` (``transport-cc``, ``remb`` or None),
        ``loss`` (0-1), ``rtt_ms`` (None until a receiver report echoed a sender report) and
        ``transport_cc_feedback_sent`` (to a publisher). ``UnknownPeer`` if it has no peer there."""

    async def set_max_layer(self, room_id: RoomId, peer_id: PeerId, max_layer: int | None) -> int:
        """A viewer caps the simulcast layers it gets (0 the lowest; None lifts the cap): it moves down
        at once (at the lower layer's next keyframe) and never above the cap. Returns how many of its
        tracks are simulcast (0: the cap changes nothing). ``UnknownPeer`` if it has no peer there."""

    async def save_clip(self, room_id: RoomId) -> Clip:
        """The room's last ``sfu.clip_seconds`` of every published track in one file, remuxed from the
        buffered RTP (never decoded). ``UnknownRoom`` if the room is not open, ``NoClip`` if nothing
        is buffered (no publisher yet, or clips are off)."""


@runtime_checkable
class NodePipes(Protocol):
    """Pipes between nodes (the cascade, docs/scaling.md): a room's media pulled from its origin node.

    The origin's end exports every producer of the room (and later ones); the edge's end imports them
    as producers of its own room, with their own NACK caches, and sends merged PLIs back. Both ends
    are sealed with the nodes' shared secret. Implemented by the worker and the pool; a node whose SFU
    lacks it (or has no secret) neither pulls nor serves shows."""

    async def open_node_pipe(self, room_id: RoomId, pipe_id: str, clip: bool = False) -> int:
        """Open our end on the node's pipe address (the room must be open); returns its UDP port.
        ``clip``: the producers it imports keep a clip buffer like the room's own publishers (a call's
        far party, so that each party's node makes a clip of the whole call)."""

    async def connect_node_pipe(self, room_id: RoomId, pipe_id: str, host: str, port: int, export: bool,
                                descriptors: list[Any] | None = None) -> list[Any]:
        """Join our end to the far one; exporting, returns the piped tracks' descriptors for the importer."""

    async def close_node_pipe(self, room_id: RoomId, pipe_id: str) -> None:
        """Close our end (an importer's piped producers close, and their consumers). Idempotent."""

    async def node_pipes(self, room_id: RoomId) -> list[str]:
        """The room's live pipes between nodes (one silent for ``PIPE_SILENCE_S`` is closed by the SFU)."""


# --- native fan-out (sfu/fanout.py) ---------------------------------------------------------------

FANOUT_MODES = ("auto", "python", "native")
FANOUT_SRTP = ("auto", "system")


@dataclass(frozen=True)
class FanoutConfig:
    """The worker's fan-out choice (``sfu.fanout*`` settings)."""

    mode: str = "auto"
    """``auto`` (native when built), ``python`` or ``native`` (start fails when it is not built)."""
    batch: int = 64
    """Packets queued before a ``sendmmsg`` flush (native)."""
    flush_ms: float = 0.0
    """0: flush at the end of each received packet's fan-out; more: hold sends up to this long."""
    srtp: str = "auto"
    """Native: whose libsrtp encrypts. ``auto``: pylibsrtp's (OpenSSL, aiortc's own dependency) through
    its ``srtp_protect``, else the system's libsrtp2 (Debian's, on NSS: ~1 us more per copy);
    ``system``: always the system's."""
    slice_us: int = 300
    """The worker process's scheduler slice (``sfu.worker_slice_us``, :mod:`sfu.scheduling`): how soon it
    runs after a packet wakes it on a busy box. 0: the kernel's default."""

    def __post_init__(self) -> None:
        if self.mode not in FANOUT_MODES:
            raise ValueError(f"fanout mode must be one of {FANOUT_MODES}, got {self.mode!r}")
        if self.srtp not in FANOUT_SRTP:
            raise ValueError(f"fanout srtp must be one of {FANOUT_SRTP}, got {self.srtp!r}")
