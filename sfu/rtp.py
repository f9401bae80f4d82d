"""RTP on raw bytes: validation, payload offsets, keyframe detection, RTX wrapping. Pure functions.

The hot path never builds packet objects: a packet is ``bytes``; these helpers return ints.
"""

from __future__ import annotations

import struct

HEADER = struct.Struct("!BBHII")
"""V/P/X/CC, M/PT, sequence number, timestamp, SSRC: the 12 fixed bytes of an RTP header."""
SEQ_TS = struct.Struct("!HI")

VP8 = "video/vp8"
H264 = "video/h264"
OPUS = "audio/opus"


def payload_offset(data: bytes) -> int:
    """Offset of the payload in an RTP packet, or -1 if it is malformed.

    Checks the version, CSRC list, header extension and padding against the length.
    """
    n = len(data)
    if n < 12:
        return -1
    b0 = data[0]
    if b0 >> 6 != 2:
        return -1
    off = 12 + 4 * (b0 & 0x0F)
    if b0 & 0x10:
        if n < off + 4:
            return -1
        off += 4 + 4 * ((data[off + 2] << 8) | data[off + 3])
    if off > n:
        return -1
    if b0 & 0x20:
        pad = data[-1]
        if pad == 0 or off + pad > n:
            return -1
    return off


def payload_end(data: bytes) -> int:
    """End of the payload (before padding); call only on a packet ``payload_offset`` accepted."""
    return len(data) - data[-1] if data[0] & 0x20 else len(data)


def is_vp8_keyframe_start(payload: bytes) -> bool:
    """True when this VP8 payload (RFC 7741) starts a key frame."""
    n = len(payload)
    if n < 1:
        return False
    b = payload[0]
    if not b & 0x10 or b & 0x0F:  # S bit and partition 0
        return False
    i = 1
    if b & 0x80:  # X: extension byte
        if n < 2:
            return False
        x = payload[1]
        i = 2
        if x & 0x80:  # I: picture id
            if n <= i:
                return False
            i += 2 if payload[i] & 0x80 else 1
        if x & 0x40:  # L: tl0picidx
            i += 1
        if x & 0x30:  # T or K
            i += 1
    if n <= i:
        return False
    return not payload[i] & 0x01  # P bit 0 = key frame


def is_h264_keyframe_start(payload: bytes) -> bool:
    """True when this H.264 payload (RFC 6184) carries an IDR or SPS at its start."""
    n = len(payload)
    if n < 1:
        return False
    nal = payload[0] & 0x1F
    if nal in (5, 7):
        return True
    if nal == 24:  # STAP-A: walk the aggregated units
        i = 1
        while i + 2 < n:
            size = (payload[i] << 8) | payload[i + 1]
            if payload[i + 2] & 0x1F in (5, 7):
                return True
            i += 2 + size
        return False
    if nal == 28:  # FU-A start fragment
        return n >= 2 and bool(payload[1] & 0x80) and payload[1] & 0x1F in (5, 7)
    return False


def keyframe_detector(mime_type: str):  # type: ignore[no-untyped-def]
    """The keyframe test for a codec; audio packets are all decodable starts (None)."""
    mime = mime_type.lower()
    if mime == VP8:
        return is_vp8_keyframe_start
    if mime == H264:
        return is_h264_keyframe_start
    return None


def rtx_wrap(header: bytes, original_seq: int, payload: bytes) -> bytes:
    """An RTX packet (RFC 4588): the given 12-byte header, then the original sequence number, then the payload."""
    return header + original_seq.to_bytes(2, "big") + payload


def seq_delta(a: int, b: int) -> int:
    """Signed distance from sequence number ``b`` to ``a`` on the 16-bit circle."""
    d = (a - b) & 0xFFFF
    return d - 0x10000 if d >= 0x8000 else d


def continuity_offsets(last_seq: int, last_ts: int, elapsed_s: float, clock_rate: int, seq: int,
                       ts: int) -> tuple[int, int]:
    """Offsets that make the consumer's next packet follow ``last_seq``/``last_ts`` when the source
    restarts at ``seq``/``ts``: the sequence goes on by one, the timestamp by the elapsed time."""
    seq_off = (last_seq + 1 - seq) & 0xFFFF
    ts_off = (last_ts + max(1, int(elapsed_s * clock_rate)) - ts) & 0xFFFFFFFF
    return seq_off, ts_off
