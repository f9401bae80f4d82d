"""Consumer: one producer's track forwarded to one subscriber transport.

Rewrites SSRC, payload type, sequence number and timestamp with fixed offsets chosen at start
(so a switch of producer keeps both continuous), answers NACKs from the producer's cache (RTX
when negotiated), counts what it sends for its sender reports.
"""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING

from sfu import rtcp
from sfu.extensions import EXT_HEADER, PADS, TWCC_HEADER, Outbound, retransmission_header
from sfu.rtp import HEADER, continuity_offsets
from sfu.temporal import MAX_TID, SeqShifts, TemporalFilter
from sfu.twcc import MASK, Departures

if TYPE_CHECKING:
    from collections.abc import Callable

    from sfu.aiortc_private import WireSender
    from sfu.producer import Producer

PROBE_SOURCE = 64
"""Recent packets a probe copies from."""
NACK_RESEND_S = 0.3
"""A number is sent again at most once in this long: aiortc's NACKs repeat every missing number (up to
128 back) at each new gap, and answering each repeat on a link already losing packets fed a storm that
kept a 300 kbit/s viewer at 40-66 % loss (its jitter buffer then reset on the oldest answers)."""
NO_EXTENSIONS = Outbound(mid=b"", abs_send_time=0, transport_cc=0, passthrough={})


class Consumer:
    """Owned by its subscriber transport; registered with (not owned by) its producer."""

    relay = False
    """A viewer's consumer: forwarded to after the producer's relays (pipes), see ``Producer.active``."""

    def __init__(self, consumer_id: str, producer: Producer, wire: WireSender, ssrc: int, payload_type: int,
                 rtx_ssrc: int, rtx_payload_type: int | None, hidden: bool, out: Outbound = NO_EXTENSIONS,
                 departures: Departures | None = None) -> None:
        self.consumer_id = consumer_id
        self.producer = producer
        self.wire = wire
        self.ssrc = ssrc
        self.payload_type = payload_type
        self.rtx_ssrc = rtx_ssrc
        self.rtx_payload_type = rtx_payload_type
        self.hidden = hidden
        self.seq_off = random.getrandbits(16)
        self.ts_off = random.getrandbits(32)
        self.rtx_seq = random.getrandbits(16)
        self.packets = 0
        self.octets = 0
        self.retransmitted = 0
        self.nacked = 0
        self.started = False
        self.closed = False
        self.on_first: Callable[[], None] | None = None
        """Called once, at the keyframe the consumer first starts with (its first forwarded packet)."""
        self._last_seq = self.seq_off
        self._last_ts = self.ts_off
        self._stopped_at = time.monotonic()
        self.pending: Producer | None = None
        """A simulcast layer this consumer moves to at that layer's next keyframe (it waits there)."""
        self._start = 0
        """Our first sequence number since the last (re)start or switch (earlier ones: ``_before``)."""
        self._before: tuple[Producer, int, int, int, int] | None = None
        """The layer it left at its last switch or restart: (producer, its sequence and timestamp offsets,
        our first number after it, our first number on it); NACKs for those numbers are answered from
        it, none for older ones (another segment's offsets would resend a wrong packet)."""
        self.switches = 0
        """Layer switches made (simulcast)."""
        self.probed = 0
        """Bytes of probe packets sent (``send_probe``)."""
        self._probe_from = 0
        self.paused = False
        """Stopped by :meth:`pause` (the viewer's link carries no video layer)."""
        self.temporal: TemporalFilter | None = None
        """VP8 temporal layers and picture id rewriting (simulcast viewers only: ``use_temporal``)."""
        self._shifts: SeqShifts | None = None
        """Our sequence offset's changes since the last layer switch (each dropped packet moves it):
        a NACK is mapped back with the one in force; None while nothing was dropped."""
        self._shifted_before: SeqShifts | None = None
        self._resent_at: dict[int, tuple[int, float]] = {}
        """When each of our last 1024 numbers was last sent again (``NACK_RESEND_S``), by number & 0x3FF."""
        self._rewritten: dict[int, tuple[int, bytes]] = {}
        """The last 1024 payloads rewritten for this viewer (picture ids), by our sequence number."""
        self._left: Producer | None = None
        """The layer our numbers so far came from, when the consumer moved to another while stopped
        (paused, or resumed and waiting for a keyframe): NACKs map to it until the consumer restarts."""
        self.out = out
        """The viewer transport's extension ids (``mid`` element, ``abs-send-time``, passthrough)."""
        self.departures = departures if out.transport_cc else None
        """The viewer transport's transport-cc numbering (shared by its consumers), when negotiated."""
        self.tail_key = repr((out.mid, self.departures is not None, out.key()))
        """What this consumer's extension block depends on besides the packet; a str: its hash is
        computed once, not per packet (a tuple's is not cached)."""
        self._twcc_byte = (out.transport_cc << 4) | 1
        if not out.empty:
            self.forward = self._forward_ext  # type: ignore[method-assign]

    def start(self, seq: int, ts: int) -> None:
        """Called by the producer at the keyframe this consumer starts with (or, for a layer switch
        asked by :meth:`switch_at_keyframe`, the target layer's keyframe: the handover happens here)."""
        if self.on_first is not None:
            first, self.on_first = self.on_first, None
            first()
        self._probe_from = seq
        if self.pending is not None:
            self._hand_over(seq, ts)
            return
        if self.started:  # resumed (a pause, another producer): NACKs from before map as they were sent
            left, self._left = self._left or self.producer, None
            self.switches += left is not self.producer
            self._before = (left, self.seq_off, self.ts_off, (self._last_seq + 1) & 0xFFFF, self._start)
            self._rotate_shifts()
            if self.temporal is not None:
                self.temporal.rebase = True
            self.seq_off, self.ts_off = continuity_offsets(
                self._last_seq, self._last_ts, time.monotonic() - self._stopped_at,
                self.producer.codec.clock_rate, seq, ts)
        self.started = True
        self._start = (seq + self.seq_off) & 0xFFFF

    def forward(self, seq: int, ts: int, marker: int, payload: bytes) -> None:
        wire = self.wire
        packet = HEADER.pack(0x80, marker | self.payload_type, (seq + self.seq_off) & 0xFFFF,
                             (ts + self.ts_off) & 0xFFFFFFFF, self.ssrc) + payload
        try:
            wire.sendto(wire.protect(packet), wire.addr)
        except Exception:  # pylibsrtp's boundary (a packet over its buffer): the path that grows it, or drops
            if not wire.send_rtp(packet):  # refused (SRTP: an index too far back): not sent, not counted
                return
        self.packets += 1
        self.octets += len(payload)

    def _forward_ext(self, seq: int, ts: int, marker: int, payload: bytes) -> None:
        """:meth:`forward` with header extensions: everything but the ``transport-cc`` number (``mid``,
        ``abs-send-time``, passthrough values, padding) is built once per packet for all consumers
        with the same ids and ``mid``, payload included (:meth:`_tail`); each adds its header and its
        transport's next number."""
        producer = self.producer
        entry = producer.tails.get(self.tail_key)
        if entry is None:
            entry = producer.tails[self.tail_key] = self._tail(producer, payload)
        words, tail_payload = entry
        d = self.departures
        if d is not None:
            s = d.seq = (d.seq + 1) & 0xFFFF
            packet = TWCC_HEADER.pack(0x90, marker | self.payload_type, (seq + self.seq_off) & 0xFFFF,
                                      (ts + self.ts_off) & 0xFFFFFFFF, self.ssrc, 0xBEDE, words,
                                      self._twcc_byte, s) + tail_payload
            d.sent[s & MASK] = producer.departure
        else:
            packet = EXT_HEADER.pack(0x90, marker | self.payload_type, (seq + self.seq_off) & 0xFFFF,
                                     (ts + self.ts_off) & 0xFFFFFFFF, self.ssrc, 0xBEDE, words) + tail_payload
        wire = self.wire
        try:
            wire.sendto(wire.protect(packet), wire.addr)
        except Exception:  # as in forward
            if not wire.send_rtp(packet):
                return
        self.packets += 1
        self.octets += len(payload)

    def _tail(self, producer: Producer, payload: bytes) -> tuple[int, bytes]:
        """(extension block length in words, the elements after a ``transport-cc`` one, padded, and
        the payload: one concatenation per packet per kind of consumer, one per consumer after)."""
        ext = self.out.mid + self.out.tail(producer.sent_abs, producer.ext_values)
        n = len(ext) + (3 if self.departures is not None else 0)
        pad = PADS[n & 3]
        return (n + len(pad)) >> 2, ext + pad + payload

    def switch_at_keyframe(self, target: Producer) -> None:
        """Move to another layer of the same track at its next keyframe (asked for with a PLI, unless
        hidden), forwarding the current one until then; the target being the current layer cancels a
        pending move. A consumer forwarding nothing now (not started yet, paused, or resumed and waiting
        for a keyframe) just moves: it (re)starts on the target, numbering on from its last packet."""
        if self.pending is not None:
            self.pending.remove_consumer(self)
            self.pending = None
        if target is self.producer or self.closed:
            return
        if not self.started or self.paused or self not in self.producer.active:
            if self.started and self._left is None:
                self._left = self.producer
            self.producer.remove_consumer(self)
            self.producer = target
            if not self.paused:
                target.add_consumer(self)
            return
        self.pending = target
        target.add_consumer(self)

    def _hand_over(self, seq: int, ts: int) -> None:
        """At the target layer's keyframe ``seq``/``ts``: leave the current layer after its last packet
        we sent; numbering goes on by one, the timestamp by the time since that packet."""
        old, new = self.producer, self.pending
        assert new is not None
        self.pending = None
        old.remove_consumer(self)
        last = old.lookup(old.max_seq) if old.max_seq >= 0 else None
        last_seq = (old.max_seq + self.seq_off) & 0xFFFF
        last_ts = ((last[1] if last is not None else 0) + self.ts_off) & 0xFFFFFFFF
        elapsed = max(0.0, time.monotonic() - old.departure[0]) if old.departure[0] else 0.0
        self._before = (old, self.seq_off, self.ts_off, (last_seq + 1) & 0xFFFF, self._start)
        self._start = (last_seq + 1) & 0xFFFF
        self._rotate_shifts()
        if self.temporal is not None:
            self.temporal.rebase = True
        self.seq_off, self.ts_off = continuity_offsets(last_seq, last_ts, elapsed, new.codec.clock_rate, seq, ts)
        self.producer = new
        self.switches += 1

    def _rotate_shifts(self) -> None:
        """At a switch or resume: the shifts so far answer NACKs of numbers before it; none after."""
        self._shifted_before, self._shifts = self._shifts, None

    def _source_of(self, s: int) -> tuple[Producer, int, int] | None:
        """The layer and offsets our sequence number ``s`` was sent with (the current one, or the one
        left at the last switch or restart for numbers before it); None: older, or not started."""
        if not self.started:
            return None
        if (s - self._start) & 0xFFFF < 0x8000:
            return (self._left or self.producer,
                    self._shifts.offset_of(s) if self._shifts is not None else self.seq_off, self.ts_off)
        before = self._before
        if before is None or (s - before[4]) & 0xFFFF >= (before[3] - before[4]) & 0xFFFF:
            return None
        old = self._shifted_before
        return before[0], old.offset_of(s) if old is not None else before[1], before[2]

    def on_nack(self, seqs: list[int]) -> None:
        self.nacked += len(seqs)
        now = time.monotonic()
        for s in seqs:
            last = self._resent_at.get(s & 0x3FF)
            if last is not None and last[0] == s and now - last[1] < NACK_RESEND_S:
                continue
            self._resent_at[s & 0x3FF] = (s, now)
            source = self._source_of(s)
            if source is None:
                continue
            producer, seq_off, ts_off = source
            entry = producer.lookup((s - seq_off) & 0xFFFF)
            if entry is None:
                continue
            _, ts, marker, payload = entry
            if self.temporal is not None:
                payload = self._resent(s, payload)
            ts = (ts + ts_off) & 0xFFFFFFFF
            if self.rtx_payload_type is not None:
                self.rtx_seq = (self.rtx_seq + 1) & 0xFFFF
                packet = retransmission_header(self.out, self.departures, marker | self.rtx_payload_type,
                                               self.rtx_seq, ts, self.rtx_ssrc, len(payload) + 2)
                packet += s.to_bytes(2, "big") + payload
            else:
                packet = retransmission_header(self.out, self.departures, marker | self.payload_type, s, ts,
                                               self.ssrc, len(payload)) + payload
            self.wire.send_rtp(packet)
            self.retransmitted += 1

    # temporal layers (sfu/temporal.py) -----------------------------------------------------

    def use_temporal(self, target: int = MAX_TID) -> None:
        """Filter VP8 temporal layers up to ``target`` from now on, rewriting picture ids and
        TL0PICIDX (a simulcast viewer: ids stay continuous across layer switches too)."""
        if self.temporal is None:
            self.temporal = TemporalFilter()
            self._plain_forward = self.forward
            self.forward = self._forward_temporal  # type: ignore[method-assign]
            self.tail_key += f":{id(self)}"  # the payload may be this consumer's own
            self.producer.fan = None  # the native plane's fan-out leaves this consumer to its filter
        self.temporal.target = target

    def _forward_temporal(self, seq: int, ts: int, marker: int, payload: bytes) -> None:
        assert self.temporal is not None
        out = self.temporal.on_packet(payload)
        if out is None:  # a dropped packet takes no sequence number
            if self._shifts is None:
                self._shifts = SeqShifts(self.seq_off)
            self.seq_off = (self.seq_off - 1) & 0xFFFF
            self._shifts.drop(seq, self.seq_off)
            return
        if out is not payload:  # NACKs are answered with what this viewer got
            s = (seq + self.seq_off) & 0xFFFF
            self._rewritten[s & 0x3FF] = (s, out)
        self._plain_forward(seq, ts, marker, out)

    def _resent(self, s: int, payload: bytes) -> bytes:
        """The payload our number ``s`` carried (its rewritten picture id, when it was rewritten)."""
        kept = self._rewritten.get(s & 0x3FF)
        return kept[1] if kept is not None and kept[0] == s else payload

    # pausing (a link too weak for any video layer) ------------------------------------------

    def pause(self) -> None:
        """Stop forwarding until :meth:`resume` (audio, another consumer, goes on)."""
        if self.paused or self.closed:
            return
        self.paused = True
        if self.pending is not None:
            self.pending.remove_consumer(self)
            self.pending = None
        producer = self.producer
        forwarding = self in producer.active  # else stopped already (waiting for a keyframe)
        producer.remove_consumer(self)
        if forwarding:
            self.stopped()

    def stopped(self) -> None:
        """It stops forwarding its producer now (paused, or the producer closed under it): numbering
        goes on from the last packet it sent when it starts again."""
        producer = self.producer
        last = producer.lookup(producer.max_seq) if producer.max_seq >= 0 else None
        if last is not None:
            self._last_seq = (producer.max_seq + self.seq_off) & 0xFFFF
            self._last_ts = (last[1] + self.ts_off) & 0xFFFFFFFF
        self._stopped_at = time.monotonic()

    def resume(self) -> None:
        """Forward again from the producer's next keyframe (asked for), numbering continuous."""
        if not self.paused or self.closed:
            return
        self.paused = False
        self.producer.add_consumer(self)

    # probing (sfu/probe.py) ------------------------------------------------------------------

    def send_probe(self, budget: int) -> int:
        """RTX copies of packets the viewer already has, the largest of the last ``PROBE_SOURCE`` it got
        from its current layer first, until ``budget`` bytes are sent (receivers drop duplicates);
        bytes sent (0 without RTX, or before the first packet). Each copy is resolved from the number
        the viewer got it under, as a NACK is (temporal layers drop packets and rewrite payloads: a copy
        under another number would be a wrong packet in the viewer's jitter buffer)."""
        producer = self._left or self.producer
        if self.rtx_payload_type is None or not self.started or producer.max_seq < 0 or budget <= 0:
            return 0
        # our newest number: the last one sent when stopped, else the producer's newest plus our offset,
        # less one when packets were dropped (a drop moves the offset for the next packet: not sent yet)
        last = self._last_seq if self not in self.producer.active else (
            producer.max_seq + self.seq_off - (1 if self._shifts is not None else 0)) & 0xFFFF
        first = self._probe_from
        found = []
        for i in range(PROBE_SOURCE):
            s = (last - i) & 0xFFFF
            found_at = self._source_of(s)
            if found_at is None:
                continue
            source, seq_off, ts_off = found_at
            p = (s - seq_off) & 0xFFFF
            if source is not producer or (p - first) & 0xFFFF >= 0x8000:  # only what this layer sent it
                continue
            entry = producer.lookup(p)
            if entry is not None:
                payload = self._resent(s, entry[3]) if self.temporal is not None else entry[3]
                found.append((s, (entry[1] + ts_off) & 0xFFFFFFFF, payload))
        found.sort(key=lambda e: -len(e[2]))
        sent = 0
        while found and sent < budget:
            for s, ts, payload in found:
                self.rtx_seq = (self.rtx_seq + 1) & 0xFFFF
                packet = retransmission_header(self.out, self.departures, self.rtx_payload_type, self.rtx_seq, ts,
                                               self.rtx_ssrc, len(payload) + 2) + s.to_bytes(2, "big") + payload
                self.wire.send_rtp(packet)
                sent += len(packet)
                if sent >= budget:
                    break
        self.probed += sent
        return sent

    def sender_report(self) -> bytes | None:
        """SR with our counts and the publisher's NTP/RTP mapping shifted by our timestamp offset."""
        if not self.started:
            return None
        clock = (self._left or self.producer).rtp_clock_now()  # the layer our numbers came from
        if clock is None:
            return None
        ntp, rtp_ts = clock
        return rtcp.build_sr(self.ssrc, ntp, rtp_ts + self.ts_off, self.packets, self.octets)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.producer.remove_consumer(self)
        if self.pending is not None:
            self.pending.remove_consumer(self)
            self.pending = None
