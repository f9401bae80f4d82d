"""RTP payloads back to codec frames, without decoding. Pure functions on bytes.

Each depacketizer takes the RTP packets of one track in sequence order, as
``(sequence, timestamp, marker, payload)`` tuples with the sequence and timestamp already unwrapped
(monotonic ints), and returns :class:`Frame`\\ s. A malformed payload or a frame with a hole never
raises: it is counted in :class:`Drops` and skipped, and video waits for the next keyframe after
it (an inter frame whose reference is gone would not decode).

- VP8 (RFC 7741): strip the payload descriptor; a frame is the packets of one timestamp, from a
  start of partition 0 (S=1, PID=0) to the marker bit, without a gap in the sequence numbers.
- H.264 (RFC 6184): single NAL units, STAP-A and FU-A, to Annex B (start codes) access units.
- Opus (RFC 7587): one packet per RTP payload.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

from sfu.rtp import H264, OPUS, VP8, is_vp8_keyframe_start

Packet = tuple[int, int, int, bytes]
"""(unwrapped sequence, unwrapped timestamp, marker, payload)."""

START_CODE = b"\x00\x00\x00\x01"


@dataclass(frozen=True)
class Frame:
    """One coded frame (video) or packet (audio)."""

    timestamp: int
    """Unwrapped RTP timestamp."""
    data: bytes
    keyframe: bool


@dataclass
class Drops:
    """What a depacketizer skipped, by cause."""

    malformed: int = 0
    """Payloads that do not parse."""
    incomplete: int = 0
    """Frames with a missing packet (a gap in sequence numbers, no start, no marker)."""
    undecodable: int = 0
    """Frames skipped while waiting for a keyframe (before the first one, or after a hole)."""

    def count(self, kind: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)

    @property
    def total(self) -> int:
        return self.malformed + self.incomplete + self.undecodable


def vp8_payload(payload: bytes) -> tuple[bool, bytes] | None:
    """``(starts partition 0, data after the descriptor)``, or None if the descriptor is malformed."""
    n = len(payload)
    if n < 1:
        return None
    b = payload[0]
    i = 1
    if b & 0x80:
        if n < 2:
            return None
        x = payload[1]
        i = 2
        if x & 0x80:  # picture id, 7 or 15 bits
            if n <= i:
                return None
            i += 2 if payload[i] & 0x80 else 1
        if x & 0x40:
            i += 1
        if x & 0x30:
            i += 1
    if i >= n:
        return None
    return bool(b & 0x10) and not b & 0x0F, payload[i:]


def h264_nals(payload: bytes) -> tuple[list[bytes], bool, bool] | None:
    """NAL units in one payload: ``(complete NALs, FU-A start?, FU-A end?)``; a FU-A fragment comes
    back as one element (with its reconstructed header when it starts). None when malformed."""
    n = len(payload)
    if n < 1:
        return None
    kind = payload[0] & 0x1F
    if 1 <= kind <= 23:
        return [payload], False, False
    if kind == 24:  # STAP-A
        nals, i = [], 1
        while i < n:
            if i + 2 > n:
                return None
            size = (payload[i] << 8) | payload[i + 1]
            if size == 0 or i + 2 + size > n:
                return None
            nals.append(payload[i + 2:i + 2 + size])
            i += 2 + size
        return (nals, False, False) if nals else None
    if kind == 28:  # FU-A
        if n < 3:
            return None
        fu = payload[1]
        start, end = bool(fu & 0x80), bool(fu & 0x40)
        if start and end:
            return None
        body = payload[2:]
        if start:
            body = bytes([(payload[0] & 0xE0) | (fu & 0x1F)]) + body
        return [body], start, end
    return None


def _group(packets: Iterable[Packet]) -> Iterable[list[Packet]]:
    """Packets of one timestamp at a time, in order (the input is in sequence order)."""
    run: list[Packet] = []
    for p in packets:
        if run and p[1] != run[0][1]:
            yield run
            run = []
        run.append(p)
    if run:
        yield run


def _contiguous(run: list[Packet]) -> bool:
    return all(b[0] == a[0] + 1 for a, b in itertools.pairwise(run)) and bool(run[-1][2])


def _vp8_frame(run: list[Packet], drops: Drops) -> Frame | None:
    parts = []
    for i, (_, _, _, payload) in enumerate(run):
        parsed = vp8_payload(payload)
        if parsed is None:
            drops.count("malformed")
            return None
        starts, data = parsed
        if starts != (i == 0):
            drops.count("incomplete")
            return None
        parts.append(data)
    if not _contiguous(run):
        drops.count("incomplete")
        return None
    data = b"".join(parts)
    return Frame(run[0][1], data, is_vp8_keyframe_start(run[0][3]))


def _h264_frame(run: list[Packet], drops: Drops) -> Frame | None:
    nals: list[bytes] = []
    fragment: list[bytes] | None = None
    for _, _, _, payload in run:
        parsed = h264_nals(payload)
        if parsed is None:
            drops.count("malformed")
            return None
        units, start, end = parsed
        if (payload[0] & 0x1F) == 28:
            if start:
                if fragment is not None:
                    drops.count("incomplete")
                    return None
                fragment = []
            elif fragment is None:
                drops.count("incomplete")
                return None
            fragment.append(units[0])
            if end:
                nals.append(b"".join(fragment))
                fragment = None
        else:
            if fragment is not None:
                drops.count("incomplete")
                return None
            nals.extend(units)
    if fragment is not None or not _contiguous(run):
        drops.count("incomplete")
        return None
    keyframe = any(nal[0] & 0x1F in (5, 7) for nal in nals)
    return Frame(run[0][1], b"".join(START_CODE + nal for nal in nals), keyframe)


def video_frames(mime_type: str, packets: Iterable[Packet], drops: Drops) -> list[Frame]:
    """Complete, decodable video frames: from the first keyframe, and after a hole from the next one."""
    build = _vp8_frame if mime_type.lower() == VP8 else _h264_frame
    frames: list[Frame] = []
    waiting = True
    last_seq: int | None = None
    for run in _group(packets):
        frame = build(run, drops)
        hole = last_seq is not None and run[0][0] != last_seq + 1
        last_seq = run[-1][0]
        if frame is None or (hole and not frame.keyframe):
            waiting = True
            if frame is not None:
                drops.count("undecodable")
            continue
        if waiting and not frame.keyframe:
            drops.count("undecodable")
            continue
        waiting = False
        frames.append(frame)
    return frames


def opus_frames(packets: Iterable[Packet], drops: Drops) -> list[Frame]:
    """One frame per non-empty payload (an empty payload is a malformed packet)."""
    frames = []
    for _, ts, _, payload in packets:
        if not payload:
            drops.count("malformed")
            continue
        frames.append(Frame(ts, bytes(payload), True))
    return frames


def frames(mime_type: str, packets: Iterable[Packet], drops: Drops) -> list[Frame]:
    """The frames of a track of this codec (VP8, H.264 or Opus)."""
    mime = mime_type.lower()
    if mime in (VP8, H264):
        return video_frames(mime, packets, drops)
    if mime == OPUS:
        return opus_frames(packets, drops)
    raise ValueError(f"no depacketizer for {mime_type}")



class _Bits:
    """An H.264 RBSP bit reader (emulation prevention bytes removed); reading past the end raises IndexError."""

    def __init__(self, nal: bytes) -> None:
        self.data = nal.replace(b"\x00\x00\x03", b"\x00\x00")
        self.pos = 0

    def u(self, n: int) -> int:
        v = 0
        for _ in range(n):
            v = (v << 1) | ((self.data[self.pos >> 3] >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return v

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise IndexError("bad exp-golomb code")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})


def h264_sps_size(sps: bytes) -> tuple[int, int] | None:
    """Width and height coded in an SPS NAL unit (header byte included), or None if it does not parse."""
    try:
        b = _Bits(sps[1:])
        profile = b.u(8)
        b.u(16)
        b.ue()
        chroma = 1
        if profile in HIGH_PROFILES:
            chroma = b.ue()
            if chroma == 3:
                b.u(1)
            b.ue()
            b.ue()
            b.u(1)
            if b.u(1):
                for i in range(12 if chroma == 3 else 8):
                    if b.u(1):
                        last = scale = 8
                        for _ in range(16 if i < 6 else 64):
                            if scale:
                                scale = (last + b.se() + 256) % 256
                            last = scale or last
        b.ue()
        poc = b.ue()
        if poc == 0:
            b.ue()
        elif poc == 1:
            b.u(1)
            b.se()
            b.se()
            for _ in range(b.ue()):
                b.se()
        b.ue()
        b.u(1)
        width_mbs, height_units = b.ue() + 1, b.ue() + 1
        frame_mbs_only = b.u(1)
        if not frame_mbs_only:
            b.u(1)
        b.u(1)
        crop = (b.ue(), b.ue(), b.ue(), b.ue()) if b.u(1) else (0, 0, 0, 0)
    except IndexError:
        return None
    unit_x, unit_y = (2, 2) if chroma == 1 else ((2, 1) if chroma == 2 else (1, 1))
    if chroma == 0:
        unit_x = unit_y = 1
    unit_y *= 2 - frame_mbs_only
    width = width_mbs * 16 - (crop[0] + crop[1]) * unit_x
    height = (2 - frame_mbs_only) * height_units * 16 - (crop[2] + crop[3]) * unit_y
    return (width, height) if width > 0 and height > 0 else None


def h264_size(access_unit: bytes) -> tuple[int, int] | None:
    """Width and height from the first SPS in an Annex B access unit."""
    for nal in access_unit.split(START_CODE):
        if nal and nal[0] & 0x1F == 7:
            return h264_sps_size(nal)
    return None
