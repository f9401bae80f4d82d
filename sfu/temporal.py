"""VP8 temporal layers: a viewer's frame rate lowered before its resolution (RFC 7741 payload descriptor).

Chrome encodes each VP8 simulcast layer in temporal layers (``TID`` 0-2: 7.5, 15, 30 fps; L1T3) and
says so in every packet's payload descriptor: ``TID``, the ``Y`` (layer sync) bit, ``TL0PICIDX``
(counts the base layer's pictures) and a picture id. Dropping the pictures above a temporal layer
leaves a stream that decodes at a fraction of the frame rate and bitrate, so a viewer whose estimate
no longer fits its spatial layer first loses temporal layers (30 -> 15 -> 7.5 fps) and only then
goes down a spatial layer (``sfu.simulcast``).

What a viewer receives stays a valid stream (:class:`TemporalFilter`, pure, per consumer):

* the highest forwarded layer goes down at the start of any picture, and up only at a keyframe or at
  a picture of the new layer carrying ``Y`` (it depends on the base layer only);
* the picture ids of dropped pictures are taken out (ids stay consecutive), ``TL0PICIDX`` is rebased
  at a switch of spatial layer (keyframe) so it goes on by one, and the consumer takes each dropped
  packet out of its sequence numbers (``dropped``).

Descriptors without ``T`` (no temporal layers) pass through untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_TID = 2
FRACTIONS = (0.4, 0.6, 1.0)
"""The share of a layer's bitrate its temporal layers up to 0, 1, 2 take (libwebrtc's L1T3 split)."""


@dataclass(frozen=True)
class Descriptor:
    """What a VP8 payload descriptor says (offsets into the payload; -1 when absent)."""

    size: int
    start: bool
    """First packet of a picture (``S`` with partition 0)."""
    key: bool
    """That first packet starts a keyframe."""
    picture_id: int
    pid_at: int
    pid_bits: int
    tl0: int
    tl0_at: int
    tid: int
    sync: bool


def parse(payload: bytes) -> Descriptor | None:
    """The descriptor of a VP8 payload; None when too short to be one."""
    n = len(payload)
    if n < 1:
        return None
    b0 = payload[0]
    start = bool(b0 & 0x10) and b0 & 0x0F == 0
    i = 1
    pid, pid_at, pid_bits, tl0, tl0_at, tid, sync = -1, -1, 0, -1, -1, -1, False
    if b0 & 0x80:
        if n < 2:
            return None
        x = payload[1]
        i = 2
        if x & 0x80:  # I: picture id
            if n <= i:
                return None
            pid_at = i
            if payload[i] & 0x80:
                if n <= i + 1:
                    return None
                pid, pid_bits, i = ((payload[i] & 0x7F) << 8) | payload[i + 1], 15, i + 2
            else:
                pid, pid_bits, i = payload[i], 7, i + 1
        if x & 0x40:  # L: TL0PICIDX
            if n <= i:
                return None
            tl0, tl0_at, i = payload[i], i, i + 1
        if x & 0x30:  # T or K: TID/Y/KEYIDX
            if n <= i:
                return None
            if x & 0x20:
                tid, sync = payload[i] >> 6, bool(payload[i] & 0x20)
            i += 1
    key = start and n > i and not payload[i] & 0x01
    return Descriptor(i, start, key, pid, pid_at, pid_bits, tl0, tl0_at, tid, sync)


def rewrite(payload: bytes, d: Descriptor, picture_id: int, tl0: int) -> bytes:
    """The payload with its picture id and ``TL0PICIDX`` replaced (each in the width it came in)."""
    out = bytearray(payload)
    if d.pid_at >= 0:
        if d.pid_bits == 15:
            out[d.pid_at] = 0x80 | ((picture_id >> 8) & 0x7F)
            out[d.pid_at + 1] = picture_id & 0xFF
        else:
            out[d.pid_at] = picture_id & 0x7F
    if d.tl0_at >= 0:
        out[d.tl0_at] = tl0 & 0xFF
    return bytes(out)


class TemporalFilter:
    """One viewer's temporal layers of one VP8 track (pure)."""

    def __init__(self) -> None:
        self.target = MAX_TID
        """The highest temporal layer the viewer should get."""
        self.current = MAX_TID
        """The highest it gets now (follows ``target`` at valid points)."""
        self.dropping = False
        """The picture under way is dropped (all its packets)."""
        self.dropped = 0
        """Packets dropped so far (the consumer's sequence numbers skip none of them)."""
        self.pid_off = 0
        self.tl0_off = 0
        self.last_pid: int | None = None
        self.last_tl0: int | None = None
        self.rebase = False
        """The next keyframe comes from another spatial layer: ids go on from the last ones sent."""
        self.seen = False
        """The stream carries temporal layers (a ``TID`` was seen)."""

    def on_packet(self, payload: bytes) -> bytes | None:
        """The payload to forward (rewritten when needed), or None to drop it."""
        d = parse(payload)
        if d is None or d.tid < 0:
            return payload
        self.seen = True
        if d.start:
            if d.key:
                self.current = self.target
                if self.rebase:
                    self.rebase = False
                    if self.last_pid is not None and d.picture_id >= 0:
                        self.pid_off = d.picture_id - (self.last_pid + 1)
                    if self.last_tl0 is not None and d.tl0 >= 0:
                        self.tl0_off = d.tl0 - (self.last_tl0 + 1)
            elif self.target < self.current:
                self.current = self.target
            elif self.target > self.current and d.sync and self.current < d.tid <= self.target:
                self.current = d.tid
            self.dropping = d.tid > self.current
            if self.dropping and d.picture_id >= 0:
                self.pid_off += 1
        if self.dropping:
            self.dropped += 1
            return None
        if d.picture_id < 0 and d.tl0 < 0:
            return payload
        mask = (1 << d.pid_bits) - 1 if d.pid_bits else 0
        pid = (d.picture_id - self.pid_off) & mask if d.picture_id >= 0 else -1
        tl0 = (d.tl0 - self.tl0_off) & 0xFF if d.tl0 >= 0 else -1
        self.last_pid = pid if pid >= 0 else self.last_pid
        self.last_tl0 = tl0 if tl0 >= 0 else self.last_tl0
        if pid == d.picture_id and tl0 == d.tl0:
            return payload
        return rewrite(payload, d, pid, tl0)


class SeqShifts:
    """A consumer's sequence offset as packets are dropped: each drop of publisher packet ``p`` makes
    the offset one less from ``p + 1`` on. Maps our sequence number back to the offset it was sent
    with (for NACKs), over the last ``KEEP`` changes."""

    KEEP = 256

    def __init__(self, base: int) -> None:
        self.base = base
        """The offset before the oldest change kept."""
        self.changes: list[tuple[int, int]] = []
        """(first publisher seq it applies to, offset), oldest first; consecutive drops merged."""

    def drop(self, seq: int, offset: int) -> None:
        nxt = (seq + 1) & 0xFFFF
        if self.changes and self.changes[-1][0] == seq:
            self.changes[-1] = (nxt, offset)
        else:
            self.changes.append((nxt, offset))
            if len(self.changes) > self.KEEP:
                self.base = self.changes.pop(0)[1]

    def offset_of(self, s: int) -> int:
        for start, off in reversed(self.changes):
            if ((s - off) - start) & 0xFFFF < 0x8000:
                return off
        return self.base
