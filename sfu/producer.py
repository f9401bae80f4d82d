"""Producer: one published track. Receives decrypted RTP, caches it for NACKs, fans it out.

The fan-out loop is the hot path: one header ``struct.pack`` + one concatenation + SRTP + sendto per
consumer, no objects per packet. Consumers wait in ``waiting`` until a keyframe starts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sfu import rtcp
from sfu.extensions import Inbound, abs_send_time
from sfu.rtp import SEQ_TS, keyframe_detector, payload_end, payload_offset
from sfu.types import PeerId

if TYPE_CHECKING:
    from sfu.clips import ClipBuffer
    from sfu.consumer import Consumer
    from sfu.fanout import Plane
    from sfu.pipe import PipeConsumer
    from sfu.simulcast import SimulcastTrack

MAX_NACK_GAP = 128
"""A forward jump of the publisher's sequence bigger than this is a restart, not a loss to NACK."""
NACK_TRIES = 3
"""NACKs sent upstream for one lost packet before we give up on it."""
CACHE_SIZE = 1024
"""Packets kept per video producer for NACKs (a power of two: ~0.7 s at 1.4 Mbit/s)."""
KEYFRAME_REPLAY_S = 0.5
"""A viewer whose consumer starts within this long after a keyframe arrived starts at that keyframe at
once, from the cache (the packets since are sent to it right away): no PLI, no wait for the next one."""


@dataclass(frozen=True)
class Codec:
    """The negotiated codec of a track."""

    kind: str
    """``audio`` or ``video``."""
    mime_type: str
    """e.g. ``video/VP8``."""
    clock_rate: int
    """RTP clock rate in Hz."""
    payload_type: int
    """Payload type on the publisher's leg."""
    channels: int | None = None
    """Audio channels, when given."""
    parameters: tuple[tuple[str, str], ...] = ()
    """fmtp parameters (H.264 profile, packetization mode...)."""


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class KeyframeRequester:
    """Merges keyframe requests into at most one PLI upstream per ``interval`` seconds.

    ``close()`` cancels a PLI still waiting for its turn (the producer closed: nobody to ask)."""

    def __init__(self, send_pli: Callable[[], None], interval: float,
                 call_later: Callable[[float, Callable[[], None]], Cancellable]) -> None:
        self._send_pli = send_pli
        self._interval = interval
        self._call_later = call_later
        self._last = -1e9
        self._timer: Cancellable | None = None
        self.closed = False
        self.requested = 0
        self.sent = 0

    @property
    def pending(self) -> bool:
        """A PLI waits for the end of the interval."""
        return self._timer is not None

    def request(self) -> None:
        self.requested += 1
        if self._timer is not None or self.closed:
            return
        wait = self._last + self._interval - time.monotonic()
        if wait <= 0:
            self._fire()
        else:
            self._timer = self._call_later(wait, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._last = time.monotonic()
        self.sent += 1
        self._send_pli()

    def close(self) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class Producer:
    """A track published by one peer, owned by its publisher transport."""

    def __init__(self, producer_id: str, peer_id: PeerId, codec: Codec, ssrc: int,
                 keyframes: KeyframeRequester, send_nack: Callable[[list[int]], None] | None = None) -> None:
        self.producer_id = producer_id
        self.peer_id = peer_id
        self.codec = codec
        self.kind = codec.kind
        self.ssrc = ssrc
        self.keyframes = keyframes
        self.is_keyframe = keyframe_detector(codec.mime_type)
        self.active: list[Consumer | PipeConsumer] = []
        self.waiting: list[Consumer | PipeConsumer] = []
        self.parked: list[PipeConsumer] = []
        """Pipe consumers of a layer the far side does not use (``sfu.pipe_demand``): sent nothing, but
        still this producer's, closed with it."""
        self.cache: list[tuple[int, int, int, bytes] | None] = [None] * (CACHE_SIZE if codec.kind == "video" else 0)
        self.packets_received = 0
        self.octets_received = 0
        """Bytes of RTP received (a simulcast layer's bitrate is measured from it)."""
        self.malformed = 0
        self.max_seq = -1
        self.cycles = 0
        self.base_seq = -1
        self.send_nack = send_nack if self.cache else None
        """Asks the publisher to resend sequence numbers (NACK upstream); video only."""
        self.missing: dict[int, int] = {}
        """Sequence numbers lost on the publisher's leg -> NACKs sent for each."""
        self.nacks_sent = 0
        self.repaired = 0
        self.duplicates = 0
        """Video packets dropped because the cache holds them already (same sequence number and
        timestamp): duplicates, late repairs, and RTX payload padding (Chrome's probes)."""
        self.rtx_received = 0
        self.sr: tuple[int, int, float] | None = None
        """Publisher's last sender report: (NTP, RTP timestamp, local monotonic arrival)."""
        self.ext_in = Inbound()
        """The extension ids of the publisher's m-section (the transport sets them)."""
        self.departure = (0.0, 0)
        """Per packet, for consumers writing extensions: (when its fan-out started, monotonic s; its
        size with a typical header) for their transport's departures,"""
        self.sent_abs = b"\0\0\0"
        """the same as ``abs-send-time``,"""
        self.ext_values: tuple[tuple[str, bytes], ...] = ()
        """its passthrough extension values,"""
        self.tails: dict[str, tuple[int, bytes]] = {}
        """and (words, extension elements + payload) built for it so far, by consumer key (see
        ``Consumer._forward_ext``)."""
        self.clip: ClipBuffer | None = None
        """The last seconds of this track for evidence clips (the router sets it; None: off)."""
        self.simulcast: SimulcastTrack | None = None
        """The track this producer is one layer of, when its publisher sends simulcast."""
        self.keyframe_at: tuple[int, float] | None = None
        """(publisher sequence number, monotonic arrival) of the latest keyframe's first packet."""
        self.replayed = 0
        """Consumers started from the cache at a recent keyframe (:meth:`add_consumer` with ``replay``)."""
        # native fan-out (sfu/fanout.py) ------------------------------------------------------
        self.plane: Plane | None = None
        """The worker's native plane (the router sets it): one call writes, encrypts and queues every
        native consumer's copy. None: each consumer forwards its own (the Python path)."""
        self.fan: Any = None
        """The plane's view of ``active`` (its records, the other consumers), rebuilt after a change."""
        self.closed = False

    # hot path -------------------------------------------------------------------------------

    def on_rtp(self, data: bytes) -> None:
        off = payload_offset(data)
        if off < 0:
            self.malformed += 1
            return
        seq, ts = SEQ_TS.unpack_from(data, 2)
        cache = self.cache
        if cache:
            held = cache[seq & (CACHE_SIZE - 1)]
            if held is not None and held[0] == seq and held[1] == ts:
                # A packet we already have: a network duplicate, a repair that came after the packet
                # itself, or Chrome's payload padding (a bandwidth probe on its RTX stream resends a
                # recent packet). Its viewers have it: none gets it twice (mediasoup drops them too).
                self.duplicates += 1
                return
        marker = data[1] & 0x80
        payload = data[off:payload_end(data)]
        self.packets_received += 1
        self.octets_received += len(data)
        max_seq = self.max_seq
        if max_seq < 0:
            self.base_seq = self.max_seq = seq
        elif (gap := (seq - max_seq) & 0xFFFF) < 0x8000:
            if seq < max_seq:
                self.cycles += 0x10000
            self.max_seq = seq
            if gap > 1 and self.send_nack is not None:
                self._lost(max_seq, gap)
        elif self.missing and self.missing.pop(seq, None) is not None:
            self.repaired += 1
        if cache:
            cache[seq & (CACHE_SIZE - 1)] = (seq, ts, marker, payload)
        clip = self.clip
        if clip is not None:
            clip.add(seq, ts, marker, payload)
        is_keyframe = self.is_keyframe
        if is_keyframe is None:
            if self.waiting:
                self._start_waiting(seq, ts)
        elif is_keyframe(payload):
            self.keyframe_at = (seq, time.monotonic())
            if self.waiting:
                self._start_waiting(seq, ts)
        if self.active:
            now = time.monotonic()
            self.departure = (now, len(payload) + 40)
            self.sent_abs = abs_send_time(now)
            self.ext_values = self.ext_in.values(data) if self.ext_in.passthrough else ()
            self.tails = {}
        plane = self.plane
        if plane is None:
            for c in self.active:
                c.forward(seq, ts, marker, payload)
        elif self.active:
            plane.fanout(self, seq, ts, marker, payload)

    def _start_waiting(self, seq: int, ts: int) -> None:
        for c in self.waiting:
            c.start(seq, ts)
            self._activate(c)
        self.waiting.clear()
        self.fan = None

    def _activate(self, consumer: Consumer | PipeConsumer) -> None:
        """Forward to ``consumer`` from now on. A relay (a pipe to another worker or node) goes before
        every viewer: the viewers behind it wait for its copy, so it must not wait for a whole fan-out."""
        if consumer.relay:
            at = next((i for i, c in enumerate(self.active) if not c.relay), len(self.active))
            self.active.insert(at, consumer)
        else:
            self.active.append(consumer)

    def _lost(self, last: int, gap: int) -> None:
        if gap > MAX_NACK_GAP:  # a jump, not a loss (publisher restarted its numbering)
            return
        seqs = [(last + i) & 0xFFFF for i in range(1, gap)]
        for s in seqs:
            self.missing[s] = 1
        self._nack(seqs)

    def _nack(self, seqs: list[int]) -> None:
        assert self.send_nack is not None
        self.nacks_sent += 1
        self.send_nack(seqs)

    def renack(self) -> None:
        """Once a tick: ask again for what is still missing (up to NACK_TRIES times), forget the rest."""
        if not self.missing:
            return
        again = []
        for s, tries in list(self.missing.items()):
            if tries >= NACK_TRIES or (self.max_seq - s) & 0xFFFF >= CACHE_SIZE // 2:
                del self.missing[s]
            else:
                self.missing[s] = tries + 1
                again.append(s)
        if again:
            self._nack(again)

    # consumers ------------------------------------------------------------------------------

    def add_consumer(self, consumer: Consumer | PipeConsumer, replay: bool = False) -> None:
        """A consumer starts at the next keyframe; ask for one now (merged, rate-limited), unless it is
        hidden: a tap waits for the router's keyframe schedule, so the publisher sees no PLI it causes.

        ``replay`` (a new viewer's consumer, not hidden, on a track without simulcast layers): when a
        keyframe arrived less than :data:`KEYFRAME_REPLAY_S` ago and every packet since is cached, the
        consumer starts at it now instead (:meth:`_replay`)."""
        if replay and self.is_keyframe is not None and not consumer.hidden and self._replay(consumer):
            return
        self.waiting.append(consumer)
        if self.is_keyframe is not None and not consumer.hidden:
            self.keyframes.request()

    def prepare_join(self) -> None:
        """A viewer's offer was made: ask for a keyframe now (merged, rate-limited) so a fresh one is in
        the cache when its ICE and DTLS are done, rather than asking only then."""
        if self.is_keyframe is not None and not self.closed:
            self.keyframes.request()

    def _replay(self, consumer: Consumer | PipeConsumer) -> bool:
        """Start ``consumer`` at the latest keyframe if it is recent and cached whole: send it the
        cached packets from there up to the newest, then forward it live. False: nothing done."""
        at = self.keyframe_at
        if at is None or self.simulcast is not None or time.monotonic() - at[1] > KEYFRAME_REPLAY_S:
            return False
        count = ((self.max_seq - at[0]) & 0xFFFF) + 1
        if count > CACHE_SIZE // 2:
            return False
        entries = [self.lookup((at[0] + i) & 0xFFFF) for i in range(count)]
        if None in entries:
            return False
        # The per-packet extension state belongs to the packet being fanned out: set it per cached
        # packet (no passthrough values: the cache keeps payloads), and put it back after.
        saved = (self.departure, self.sent_abs, self.ext_values, self.tails)
        now = time.monotonic()
        self.sent_abs, self.ext_values = abs_send_time(now), ()
        first = entries[0]
        assert first is not None
        consumer.start(first[0], first[1])
        for entry in entries:
            assert entry is not None
            seq, ts, marker, payload = entry
            self.departure, self.tails = (now, len(payload) + 40), {}
            consumer.forward(seq, ts, marker, payload)
        self.departure, self.sent_abs, self.ext_values, self.tails = saved
        self._activate(consumer)
        self.fan = None
        self.replayed += 1
        return True

    def remove_consumer(self, consumer: Consumer | PipeConsumer) -> None:
        if consumer in self.active:
            self.active.remove(consumer)
            self.fan = None
        if consumer in self.waiting:
            self.waiting.remove(consumer)
        if consumer in self.parked:
            self.parked.remove(consumer)  # type: ignore[arg-type]

    def lookup(self, seq: int) -> tuple[int, int, int, bytes] | None:
        """The cached packet with this (publisher-side) sequence number, if still there."""
        if not self.cache:
            return None
        entry = self.cache[seq & (CACHE_SIZE - 1)]
        return entry if entry is not None and entry[0] == seq else None

    # RTCP ----------------------------------------------------------------------------------

    def on_sender_report(self, ntp: int, rtp_ts: int) -> None:
        self.sr = (ntp, rtp_ts, time.monotonic())

    def rtp_clock_now(self) -> tuple[int, int] | None:
        """(NTP, RTP timestamp) of "now" on the publisher's clocks, from its last SR; None before one."""
        if self.sr is None:
            return None
        ntp, rtp_ts, at = self.sr
        elapsed = time.monotonic() - at
        return ntp + int(elapsed * (1 << 32)), (rtp_ts + int(elapsed * self.codec.clock_rate)) & 0xFFFFFFFF

    def receiver_report(self, own_ssrc: int) -> bytes | None:
        """An RR block about this track, for the publisher."""
        if self.max_seq < 0:
            return None
        expected = self.cycles + self.max_seq - self.base_seq + 1
        lost = max(0, expected - self.packets_received)
        fraction = min(255, (lost * 256) // expected) if expected > 0 else 0
        lsr = dlsr = 0
        if self.sr is not None:
            lsr = (self.sr[0] >> 16) & 0xFFFFFFFF
            dlsr = int((time.monotonic() - self.sr[2]) * 65536)
        return rtcp.build_rr(own_ssrc, self.ssrc, fraction, lost, self.cycles + self.max_seq, 0, lsr, dlsr)

    def close(self) -> list[Consumer | PipeConsumer]:
        """Close; returns the consumers the caller (the router) must now close."""
        if self.closed:
            return []
        self.closed = True
        self.keyframes.close()
        if self.clip is not None:
            self.clip.clear()
        orphans = self.active + self.waiting + self.parked
        self.active = []
        self.waiting = []
        self.parked = []
        self.fan = None
        return orphans


def visible_consumers(producer: Producer) -> int:
    """Visible consumers of a track: of all its layers when it is simulcast (once each, also one that
    waits on a layer while it switches)."""
    layers = producer.simulcast.layers if producer.simulcast is not None else [producer]
    return len({id(c) for p in layers for c in p.active + p.waiting if not c.hidden})
