"""Transport-wide congestion control feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01).

Two sides, per transport:

* :class:`Arrivals` records when each packet of a publisher transport arrived (by the
  ``transport-cc`` sequence number the publisher wrote) and writes the RTPFB fmt 15 feedback that
  lets the publisher's send-side estimator (Chrome's GCC) work through the SFU;
* :class:`Departures` remembers when and how big each packet the SFU sent to a viewer transport
  was (numbered by the SFU, per transport) so the viewer's feedback can be turned into
  (send time, arrival time, size) for :mod:`sfu.bwe`.

Pure code over ints and bytes; the wire format is built and parsed here (like libwebrtc's
``rtcp::TransportFeedback`` and mediasoup's ``FeedbackRtpTransportPacket``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from sfu.extensions import elements

RTPFB = 205
FMT_TWCC = 15
NOT_RECEIVED, SMALL, LARGE = 0, 1, 2
DELTA_US = 250
"""Receive deltas are in multiples of 250 us."""
REFERENCE_US = 64_000
"""The reference time is in multiples of 64 ms."""
MAX_RUN = 0x1FFF
MAX_STATUS = 0xFFFF
_FIXED = struct.Struct("!BBHIIHHI")
HISTORY = 1 << 13
"""Packets a viewer transport remembers (send time, size) for its feedback."""
MASK = HISTORY - 1


@dataclass(frozen=True)
class Feedback:
    """A parsed transport-cc feedback."""

    sender_ssrc: int
    media_ssrc: int
    base_seq: int
    count: int
    """Feedback packet count (8 bits) of the sender of this feedback."""
    arrivals: tuple[tuple[int, int | None], ...]
    """(sequence number, arrival time in us on the feedback sender's clock, None: not received)."""


def encode_chunks(symbols: list[int]) -> bytes:
    """Packet status chunks for ``symbols``: run-length chunks for runs of 7 or more, else two-bit
    status vectors of 7 (the last one padded with "not received", past the status count)."""
    out = bytearray()
    n = len(symbols)
    i = 0
    while i < n:
        s = symbols[i]
        j = i
        while j < n and symbols[j] == s and j - i < MAX_RUN:
            j += 1
        if j - i >= 7:
            out += ((s << 13) | (j - i)).to_bytes(2, "big")
            i = j
            continue
        chunk = 0xC000
        for k, sym in enumerate(symbols[i:i + 7]):
            chunk |= sym << (2 * (6 - k))
        out += chunk.to_bytes(2, "big")
        i += 7
    return bytes(out)


def build(sender_ssrc: int, media_ssrc: int, base_seq: int, count: int,
          arrivals: list[int | None]) -> bytes:
    """A feedback for consecutive sequence numbers from ``base_seq``: each arrival time in us (any
    monotonic clock), or None for a packet not received. At least one must have arrived; deltas
    must fit 16 bits (:class:`Arrivals` cuts its feedback where they would not)."""
    first = next(a for a in arrivals if a is not None)
    reference = first // REFERENCE_US
    previous = reference * REFERENCE_US
    symbols: list[int] = []
    deltas = bytearray()
    for at in arrivals:
        if at is None:
            symbols.append(NOT_RECEIVED)
            continue
        delta = (at - previous) // DELTA_US
        previous += delta * DELTA_US
        if 0 <= delta <= 0xFF:
            symbols.append(SMALL)
            deltas.append(delta)
        else:
            symbols.append(LARGE)
            deltas += struct.pack("!h", delta)
    body = encode_chunks(symbols) + bytes(deltas)
    size = _FIXED.size + len(body)
    pad = -size % 4
    b0 = 0x80 | FMT_TWCC
    if pad:
        body += bytes(pad - 1) + bytes([pad])
        b0 |= 0x20
    fixed = _FIXED.pack(b0, RTPFB, (size + pad) // 4 - 1, sender_ssrc, media_ssrc, base_seq & 0xFFFF,
                        len(arrivals), ((reference & 0xFFFFFF) << 8) | (count & 0xFF))
    return fixed + body


def parse(body: bytes) -> Feedback:
    """A feedback from an RTPFB fmt 15 body (after the 4-byte common header). Raises ValueError."""
    if len(body) < 16:
        raise ValueError("transport-cc feedback too short")
    sender, media, base, status_count, ref_count = struct.unpack_from("!IIHHI", body, 0)
    reference = ref_count >> 8
    if reference & 0x800000:
        reference -= 0x1000000
    symbols: list[int] = []
    i = 16
    while len(symbols) < status_count:
        if i + 2 > len(body):
            raise ValueError("transport-cc chunks truncated")
        chunk = (body[i] << 8) | body[i + 1]
        i += 2
        if not chunk & 0x8000:
            symbols += [(chunk >> 13) & 0x3] * (chunk & MAX_RUN)
        elif not chunk & 0x4000:
            symbols += [(chunk >> (13 - k)) & 0x1 for k in range(14)]
        else:
            symbols += [(chunk >> (2 * (6 - k))) & 0x3 for k in range(7)]
    del symbols[status_count:]
    at = reference * REFERENCE_US
    arrivals: list[tuple[int, int | None]] = []
    for k, sym in enumerate(symbols):
        seq = (base + k) & 0xFFFF
        if sym == NOT_RECEIVED:
            arrivals.append((seq, None))
            continue
        if sym == SMALL:
            if i + 1 > len(body):
                raise ValueError("transport-cc deltas truncated")
            at += body[i] * DELTA_US
            i += 1
        elif sym == LARGE:
            if i + 2 > len(body):
                raise ValueError("transport-cc deltas truncated")
            at += struct.unpack_from("!h", body, i)[0] * DELTA_US
            i += 2
        else:
            raise ValueError("transport-cc reserved symbol")
        arrivals.append((seq, at))
    return Feedback(sender, media, base, ref_count & 0xFF, tuple(arrivals))


class Arrivals:
    """Arrival times of one publisher transport's packets, and the feedback that reports them.

    Sequence numbers are unwrapped to ints; a feedback covers every number from the first not yet
    reported to the highest received (the holes as "not received"). A packet arriving after its
    number was reported is not reported again (Chrome counts it lost, as with libwebrtc receivers)."""

    MAX_SPAN = 1 << 13
    """A feedback never covers more numbers than this; a bigger jump restarts the count (a new sender)."""

    def __init__(self) -> None:
        self.arrived: dict[int, int] = {}
        self.next_seq = -1
        """Unwrapped number of the first packet not reported yet (-1: nothing seen)."""
        self.max_seq = -1
        self.count = 0
        self.sent = 0
        """Feedback packets written."""

    def record(self, seq: int, arrival_us: int) -> None:
        if self.max_seq < 0:
            self.next_seq = self.max_seq = seq
        else:
            d = (seq - self.max_seq) & 0xFFFF
            unwrapped = self.max_seq + d if d < 0x8000 else self.max_seq + d - 0x10000
            if unwrapped < self.next_seq:
                return
            if unwrapped - self.next_seq >= self.MAX_SPAN:
                self.arrived.clear()
                self.next_seq = unwrapped
            seq = unwrapped
            self.max_seq = max(self.max_seq, seq)
        self.arrived[seq] = arrival_us

    @property
    def pending(self) -> bool:
        return bool(self.arrived)

    def feedback(self, sender_ssrc: int, media_ssrc: int) -> bytes | None:
        """The feedback for everything recorded since the last one; None when nothing arrived."""
        if not self.arrived:
            return None
        arrived = self.arrived
        start = self.next_seq
        first = arrived.get(start)
        while first is None:  # leading holes are reported by the next packet that did arrive
            start += 1
            first = arrived.get(start)
        times: list[int | None] = []
        previous = (first // REFERENCE_US) * REFERENCE_US
        seq = self.next_seq
        for seq in range(self.next_seq, min(self.max_seq, self.next_seq + MAX_STATUS - 1) + 1):
            at = arrived.pop(seq, None)
            if at is not None:
                if not -0x8000 * DELTA_US <= at - previous <= 0x7FFF * DELTA_US:
                    arrived[seq] = at  # does not fit a delta: it starts the next feedback
                    seq -= 1
                    break
                previous += ((at - previous) // DELTA_US) * DELTA_US
            times.append(at)
        packet = build(sender_ssrc, media_ssrc, self.next_seq, self.count, times)
        self.next_seq = seq + 1
        self.count = (self.count + 1) & 0xFF
        self.sent += 1
        return packet


class Departures:
    """What the SFU sent on one viewer transport, by the ``transport-cc`` number it wrote.

    The forward path writes ``sent[s & MASK] = (send time, size)`` itself (no call per packet; the
    tuple is made once per publisher packet and shared by its consumers)."""

    SIZE = HISTORY
    MASK = MASK

    def __init__(self) -> None:
        self.seq = 0
        """The last number used (the next packet gets ``seq + 1``)."""
        self.sent: list[tuple[float, int]] = [(0.0, 0)] * self.SIZE

    def next(self, now: float, size: int) -> int:
        """Number a packet sent outside the fan-out loop (a retransmission)."""
        s = self.seq = (self.seq + 1) & 0xFFFF
        self.sent[s & self.MASK] = (now, size)
        return s

    def sent_at(self, seq: int) -> tuple[float, int]:
        """(send time s, size) of the packet numbered ``seq`` (within the history)."""
        return self.sent[seq & self.MASK]

    def resolve(self, feedback: Feedback) -> tuple[list[tuple[float, float, int]], int]:
        """(send time s, arrival time s, size) of each reported packet that arrived, in sequence
        order, and how many were reported lost. Numbers older than the history are skipped."""
        got: list[tuple[float, float, int]] = []
        lost = 0
        for seq, at in feedback.arrivals:
            if (self.seq - seq) & 0xFFFF >= self.SIZE:
                continue
            if at is None:
                lost += 1
            else:
                sent, size = self.sent[seq & self.MASK]
                got.append((sent, at / 1e6, size))
        return got, lost


class FeedbackSender:
    """A publisher transport's side: reads the ``transport-cc`` number (extension ``ext_id``) of each
    packet, and hands back a feedback packet at most every ``interval_us`` (on arrival; :meth:`flush`
    on the tick sends what is left)."""

    def __init__(self, ext_id: int, sender_ssrc: int, interval_us: int = 100_000) -> None:
        self.ext_id = ext_id
        self.sender_ssrc = sender_ssrc
        self.interval_us = interval_us
        self.arrivals = Arrivals()
        self._last = 0

    def on_rtp(self, data: bytes, ssrc: int, now_us: int) -> bytes | None:
        value = elements(data).get(self.ext_id)
        if value is None or len(value) != 2:
            return None
        self.arrivals.record((value[0] << 8) | value[1], now_us)
        if now_us - self._last < self.interval_us:
            return None
        self._last = now_us
        return self.arrivals.feedback(self.sender_ssrc, ssrc)

    def flush(self, media_ssrc: int) -> bytes | None:
        return self.arrivals.feedback(self.sender_ssrc, media_ssrc) if self.arrivals.pending else None
