"""RTCP on raw bytes: a compound-packet walker, the feedback the SFU reads, the reports it writes.

Pure functions. Malformed input raises :class:`ValueError` from :func:`split` only; callers count it.
"""

from __future__ import annotations

import struct
from collections.abc import Container, Iterator

SR = 200
RR = 201
SDES = 202
BYE = 203
RTPFB = 205
PSFB = 206

FMT_NACK = 1
FMT_PLI = 1
FMT_FIR = 4
FMT_REMB = 15

_HDR = struct.Struct("!BBH")
_SSRC2 = struct.Struct("!II")
_SR = struct.Struct("!BBHIIIIII")
_RR_BLOCK = struct.Struct("!IIIIII")
NTP_EPOCH_OFFSET = 2208988800


def split(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """Each packet of a compound RTCP datagram as ``(packet_type, count_or_fmt, body)``.

    ``body`` starts after the 4-byte common header. Raises ValueError on a bad version or length.
    """
    n = len(data)
    i = 0
    if n < 4:
        raise ValueError("RTCP too short")
    while i < n:
        if n - i < 4:
            raise ValueError("RTCP truncated header")
        b0, pt, words = _HDR.unpack_from(data, i)
        if b0 >> 6 != 2:
            raise ValueError("RTCP bad version")
        end = i + 4 + 4 * words
        if end > n:
            raise ValueError("RTCP truncated packet")
        yield pt, b0 & 0x1F, data[i + 4 : end]
        i = end


def feedback_ssrcs(body: bytes) -> tuple[int, int]:
    """Sender SSRC and media SSRC of an RTPFB/PSFB body."""
    if len(body) < 8:
        raise ValueError("feedback too short")
    return _SSRC2.unpack_from(body, 0)


def nack_seqs(body: bytes) -> list[int]:
    """Sequence numbers a generic NACK (RFC 4585 6.2.1) asks for."""
    seqs: list[int] = []
    for i in range(8, len(body) - 3, 4):
        pid = (body[i] << 8) | body[i + 1]
        blp = (body[i + 2] << 8) | body[i + 3]
        seqs.append(pid)
        bit = 0
        while blp:
            bit += 1
            if blp & 1:
                seqs.append((pid + bit) & 0xFFFF)
            blp >>= 1
    return seqs


def remb_bitrate(body: bytes) -> int | None:
    """The bitrate of a REMB (``goog-remb``) PSFB/APP body, or None if it is another APP message."""
    if len(body) < 16 or body[8:12] != b"REMB":
        return None
    exp = body[13] >> 2
    mantissa = ((body[13] & 0x03) << 16) | (body[14] << 8) | body[15]
    return mantissa << exp


def rr_fractions(count: int, body: bytes, sources: Container[int]) -> list[int]:
    """The ``fraction lost`` (0-255) of each report block of an RR body about one of ``sources``."""
    found = []
    for k in range(count):
        i = 4 + 24 * k
        if i + 24 > len(body):
            break
        if int.from_bytes(body[i:i + 4], "big") in sources:
            found.append(body[i + 4])
    return found


def rr_delays(count: int, body: bytes, sources: Container[int]) -> list[tuple[int, int]]:
    """``(LSR, DLSR)`` of each report block of an RR body about one of ``sources`` that echoes an SR
    (LSR 0 means none was received yet). Both in the middle 32 bits of NTP (DLSR: 1/65536 s)."""
    found = []
    for k in range(count):
        i = 4 + 24 * k
        if i + 24 > len(body):
            break
        if int.from_bytes(body[i:i + 4], "big") in sources:
            lsr, dlsr = struct.unpack_from("!II", body, i + 16)
            if lsr:
                found.append((lsr, dlsr))
    return found


def sr_info(body: bytes) -> tuple[int, int, int]:
    """Sender SSRC, 64-bit NTP time and RTP timestamp of a sender report body."""
    if len(body) < 24:
        raise ValueError("SR too short")
    ssrc, ntp_hi, ntp_lo, rtp_ts = struct.unpack_from("!IIII", body, 0)
    return ssrc, (ntp_hi << 32) | ntp_lo, rtp_ts


def ntp_from_unix(t: float) -> int:
    """64-bit NTP timestamp for a Unix time in seconds."""
    secs = int(t)
    return ((secs + NTP_EPOCH_OFFSET) << 32) | int((t - secs) * (1 << 32))


def build_sr(ssrc: int, ntp: int, rtp_ts: int, packets: int, octets: int) -> bytes:
    """A sender report with no report blocks. NTP seconds wrap like the 32-bit field (era 1 from 2036)."""
    return _SR.pack(0x80, SR, 6, ssrc, (ntp >> 32) & 0xFFFFFFFF, ntp & 0xFFFFFFFF, rtp_ts & 0xFFFFFFFF,
                    packets & 0xFFFFFFFF, octets & 0xFFFFFFFF)


def build_rr(ssrc: int, source: int, fraction_lost: int, lost: int, highest_seq: int, jitter: int,
             lsr: int, dlsr: int) -> bytes:
    """A receiver report with one block about ``source``."""
    lost_field = ((fraction_lost & 0xFF) << 24) | (max(-0x800000, min(0x7FFFFF, lost)) & 0xFFFFFF)
    return _HDR.pack(0x81, RR, 7) + ssrc.to_bytes(4, "big") + _RR_BLOCK.pack(
        source, lost_field, highest_seq & 0xFFFFFFFF, jitter & 0xFFFFFFFF, lsr & 0xFFFFFFFF, dlsr & 0xFFFFFFFF)


def build_pli(sender_ssrc: int, media_ssrc: int) -> bytes:
    """A picture loss indication."""
    return _HDR.pack(0x80 | FMT_PLI, PSFB, 2) + _SSRC2.pack(sender_ssrc, media_ssrc)


def build_nack(sender_ssrc: int, media_ssrc: int, seqs: list[int]) -> bytes:
    """A generic NACK for the given sequence numbers (packed into PID/BLP pairs)."""
    items = bytearray()
    pending = sorted(set(seqs))
    while pending:
        pid = pending.pop(0)
        blp = 0
        rest = []
        for s in pending:
            d = (s - pid) & 0xFFFF
            if 1 <= d <= 16:
                blp |= 1 << (d - 1)
            else:
                rest.append(s)
        pending = rest
        items += struct.pack("!HH", pid, blp)
    return _HDR.pack(0x80 | FMT_NACK, RTPFB, 2 + len(items) // 4) + _SSRC2.pack(sender_ssrc, media_ssrc) + bytes(items)


def build_remb(sender_ssrc: int, bitrate: int, media_ssrcs: list[int]) -> bytes:
    """A REMB message announcing ``bitrate`` bits/s for the given SSRCs."""
    exp = 0
    while bitrate >= (1 << 18):
        bitrate >>= 1
        exp += 1
    body = (_SSRC2.pack(sender_ssrc, 0) + b"REMB" + bytes([len(media_ssrcs), (exp << 2) | (bitrate >> 16)])
            + (bitrate & 0xFFFF).to_bytes(2, "big") + b"".join(s.to_bytes(4, "big") for s in media_ssrcs))
    return _HDR.pack(0x80 | FMT_REMB, PSFB, len(body) // 4) + body
