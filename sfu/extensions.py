"""RTP header extensions (RFC 8285): what the SFU negotiates, and the per-transport id maps.

aiortc negotiates only ``mid``, ``abs-send-time`` and ``audio-level`` (its ``HEADER_EXTENSIONS``), and
never looks at our packets (we take the media over). So the SFU negotiates the rest in the SDP text
it hands out: the publisher's answer keeps every extension we understand with the id the publisher
offered; the subscriber's offer adds ours with ids free in that session. Ids are never assumed: a
packet's elements are read with its transport's map, and written with the viewer transport's.

A packet's extension block is read once per publisher packet; what the viewer gets is rebuilt per
consumer from precomputed parts (see :class:`Outbound`), one-byte form (``0xBEDE``) only.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sfu.rtp import HEADER

if TYPE_CHECKING:
    from sfu.twcc import Departures

MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
RID = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
REPAIRED_RID = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
TRANSPORT_CC = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
PLAYOUT_DELAY = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay"
VIDEO_ORIENTATION = "urn:3gpp:video-orientation"

PASSTHROUGH = (AUDIO_LEVEL, PLAYOUT_DELAY, VIDEO_ORIENTATION)
"""Carried from publisher to viewer with their value unchanged (only the id is mapped)."""
FROM_PUBLISHERS = (MID, RID, REPAIRED_RID, ABS_SEND_TIME, TRANSPORT_CC, *PASSTHROUGH)
"""Kept in a publisher's answer when it offers them (``rid``/``repaired-rid`` name simulcast layers)."""
TO_VIEWERS = {"audio": (MID, ABS_SEND_TIME, TRANSPORT_CC, AUDIO_LEVEL),
              "video": (MID, ABS_SEND_TIME, TRANSPORT_CC, PLAYOUT_DELAY, VIDEO_ORIENTATION)}
"""Offered to viewers by kind. ``mid`` and ``abs-send-time`` are per hop (ours); so is ``transport-cc``:
each viewer transport numbers its own packets. ``rid`` is not sent: a viewer's stream is one SSRC."""

ONE_BYTE = 0xBEDE
MAX_ONE_BYTE_ID = 14
PADS = (b"", b"\0\0\0", b"\0\0", b"\0")
"""Zero bytes that pad an element list of length ``n`` to a multiple of 4: ``PADS[n & 3]``."""
TWCC_HEADER = struct.Struct("!BBHIIHHBH")
"""The RTP fixed header, the one-byte extension profile and length, and a transport-cc element."""
EXT_HEADER = struct.Struct("!BBHIIHH")


# --- SDP ------------------------------------------------------------------------------------------

@dataclass
class Section:
    """One m-section of an SDP, as its lines (the ``m=`` line first)."""

    lines: list[str]

    @property
    def kind(self) -> str:
        return self.lines[0][2:].split(" ", 1)[0]

    @property
    def rejected(self) -> bool:
        parts = self.lines[0].split(" ")
        return len(parts) > 1 and parts[1] == "0"

    @property
    def mid(self) -> str | None:
        return next((line[6:].strip() for line in self.lines if line.startswith("a=mid:")), None)

    def extmaps(self) -> dict[str, int]:
        """URI -> id of this section's ``a=extmap`` lines (a direction suffix on the id is ignored)."""
        found: dict[str, int] = {}
        for line in self.lines:
            if line.startswith("a=extmap:"):
                parts = line[9:].split()
                if len(parts) >= 2:
                    try:
                        found[parts[1]] = int(parts[0].split("/")[0])
                    except ValueError:
                        continue
        return found

    def payload_types(self) -> list[int]:
        """Payload types of this section that are not RTX."""
        pts = []
        for line in self.lines:
            if line.startswith("a=rtpmap:"):
                pt, _, codec = line[9:].partition(" ")
                if not codec.lower().startswith("rtx/") and pt.isdigit():
                    pts.append(int(pt))
        return pts

    def has_feedback(self, pt: int, fb: str) -> bool:
        return f"a=rtcp-fb:{pt} {fb}" in self.lines

    def add_extmaps(self, pairs: list[tuple[int, str]]) -> None:
        """Add ``a=extmap`` lines after the last one (or after the ``m=``/``c=`` lines)."""
        if not pairs:
            return
        last = max((i for i, line in enumerate(self.lines) if line.startswith("a=extmap:")), default=-1)
        if last < 0:
            last = max(i for i, line in enumerate(self.lines) if line.startswith(("m=", "c=")))
        self.lines[last + 1:last + 1] = [f"a=extmap:{i} {uri}" for i, uri in pairs]

    def add_feedback(self, pt: int, fb: str) -> None:
        """Add ``a=rtcp-fb:<pt> <fb>`` after the payload type's ``rtpmap`` line."""
        line = f"a=rtcp-fb:{pt} {fb}"
        if line in self.lines:
            return
        at = next(i for i, x in enumerate(self.lines) if x.startswith(f"a=rtpmap:{pt} "))
        self.lines.insert(at + 1, line)


def split_sdp(sdp: str) -> tuple[list[str], list[Section]]:
    """The session lines and the m-sections of an SDP (CRLF or LF separated)."""
    lines = [line for line in sdp.replace("\r\n", "\n").split("\n") if line]
    session: list[str] = []
    sections: list[Section] = []
    for line in lines:
        if line.startswith("m="):
            sections.append(Section([line]))
        elif sections:
            sections[-1].lines.append(line)
        else:
            session.append(line)
    return session, sections


def join_sdp(session: list[str], sections: list[Section]) -> str:
    return "\r\n".join([*session, *(line for s in sections for line in s.lines)]) + "\r\n"


def section_maps(sdp: str) -> dict[str, dict[str, int]]:
    """mid -> (URI -> id) for every accepted m-section of an SDP."""
    _, sections = split_sdp(sdp)
    return {s.mid: s.extmaps() for s in sections if s.mid is not None and not s.rejected}


def complete_answer(answer: str, offer: str) -> str:
    """The publisher's answer with every extension of :data:`FROM_PUBLISHERS` its offer had, with the
    offer's id, and ``transport-cc`` feedback for each payload type the offer asked it for."""
    offered = {s.mid: s for s in split_sdp(offer)[1] if s.mid is not None}
    session, sections = split_sdp(answer)
    for s in sections:
        theirs = offered.get(s.mid) if s.mid is not None else None
        if theirs is None or s.rejected:
            continue
        ours = s.extmaps()
        want = theirs.extmaps()
        s.add_extmaps(sorted((want[uri], uri) for uri in FROM_PUBLISHERS if uri in want and uri not in ours))
        if TRANSPORT_CC in want:
            for pt in s.payload_types():
                if theirs.has_feedback(pt, "transport-cc"):
                    s.add_feedback(pt, "transport-cc")
    return join_sdp(session, sections)


def allocate_ids(taken: dict[str, int], uris: list[str], previous: dict[str, int]) -> dict[str, int]:
    """Ids for ``uris`` in a BUNDLE session where ``taken`` (URI -> id) is in use: the ``previous``
    choice first (ids stay stable across renegotiations), then the lowest free one-byte id."""
    chosen = dict(taken)
    used = set(chosen.values())
    for uri in uris:
        if uri in chosen:
            continue
        prev = previous.get(uri)
        if prev is not None and prev not in used:
            chosen[uri] = prev
        else:
            free = next((i for i in range(1, MAX_ONE_BYTE_ID + 1) if i not in used), None)
            if free is None:
                continue
            chosen[uri] = free
        used.add(chosen[uri])
    return chosen


def complete_offer(offer: str, previous: dict[str, int]) -> tuple[str, dict[str, int]]:
    """A subscriber offer with :data:`TO_VIEWERS` extensions and ``transport-cc`` feedback added.

    Returns the SDP and the session's URI -> id choice (pass it as ``previous`` next time)."""
    session, sections = split_sdp(offer)
    taken: dict[str, int] = {}
    for s in sections:
        taken.update(s.extmaps())
    wanted = [uri for kind in ("audio", "video") for uri in TO_VIEWERS[kind]]
    ids = allocate_ids(taken, list(dict.fromkeys(wanted)), previous)
    for s in sections:
        if s.rejected or s.kind not in TO_VIEWERS:
            continue
        have = s.extmaps()
        s.add_extmaps(sorted((ids[uri], uri) for uri in TO_VIEWERS[s.kind] if uri in ids and uri not in have))
        for pt in s.payload_types():
            s.add_feedback(pt, "transport-cc")
    return join_sdp(session, sections), ids


# --- packets --------------------------------------------------------------------------------------

def elements(data: bytes) -> dict[int, bytes]:
    """id -> value of the header extension elements of an RTP packet (one-byte or two-byte form).

    Empty when there is no extension; malformed elements end the walk (what was read is kept)."""
    b0 = data[0]
    if not b0 & 0x10:
        return {}
    start = 12 + 4 * (b0 & 0x0F)
    if len(data) < start + 4:
        return {}
    profile = (data[start] << 8) | data[start + 1]
    end = start + 4 + 4 * ((data[start + 2] << 8) | data[start + 3])
    end = min(end, len(data))
    i = start + 4
    found: dict[int, bytes] = {}
    if profile == ONE_BYTE:
        while i < end:
            b = data[i]
            if b == 0:
                i += 1
                continue
            ext_id, size = b >> 4, (b & 0x0F) + 1
            if ext_id == 15 or i + 1 + size > end:
                break
            found[ext_id] = data[i + 1:i + 1 + size]
            i += 1 + size
    elif profile >> 4 == 0x100:
        while i + 1 < end:
            ext_id = data[i]
            if ext_id == 0:
                i += 1
                continue
            size = data[i + 1]
            if i + 2 + size > end:
                break
            found[ext_id] = data[i + 2:i + 2 + size]
            i += 2 + size
    return found


def element(ext_id: int, value: bytes) -> bytes:
    """One one-byte-form element (values of 1 to 16 bytes)."""
    return bytes([(ext_id << 4) | (len(value) - 1)]) + value


def abs_send_time(now: float) -> bytes:
    """The 24-bit 6.18 fixed-point seconds of ``abs-send-time``."""
    return (int(now * 262144) & 0xFFFFFF).to_bytes(3, "big")


@dataclass(frozen=True)
class Inbound:
    """The ids a publisher's m-section uses (0: not negotiated)."""

    mid: int = 0
    rid: int = 0
    repaired_rid: int = 0
    abs_send_time: int = 0
    transport_cc: int = 0
    passthrough: tuple[tuple[int, str], ...] = ()
    """(id, URI) of the extensions forwarded as they are."""

    @classmethod
    def of(cls, ids: dict[str, int]) -> Inbound:
        return cls(mid=ids.get(MID, 0), rid=ids.get(RID, 0), repaired_rid=ids.get(REPAIRED_RID, 0),
                   abs_send_time=ids.get(ABS_SEND_TIME, 0), transport_cc=ids.get(TRANSPORT_CC, 0),
                   passthrough=tuple((ids[u], u) for u in PASSTHROUGH if u in ids))

    def values(self, data: bytes) -> tuple[tuple[str, bytes], ...]:
        """(URI, value) of the passthrough elements in a packet, in :data:`PASSTHROUGH` order."""
        if not self.passthrough or not data[0] & 0x10:
            return ()
        found = elements(data)
        return tuple((uri, found[i]) for i, uri in self.passthrough if i in found)


@dataclass(frozen=True)
class Outbound:
    """How one consumer writes extensions toward its viewer: the viewer transport's ids."""

    mid: bytes
    """The ``mid`` element (the viewer's m-section id), or empty."""
    abs_send_time: int
    transport_cc: int
    passthrough: dict[str, int]
    """URI -> the viewer's id, for the passthrough extensions it negotiated."""

    @classmethod
    def of(cls, ids: dict[str, int], mid: str | None) -> Outbound:
        mid_id = ids.get(MID, 0)
        return cls(mid=element(mid_id, mid.encode()) if mid_id and mid else b"",
                   abs_send_time=ids.get(ABS_SEND_TIME, 0), transport_cc=ids.get(TRANSPORT_CC, 0),
                   passthrough={u: ids[u] for u in PASSTHROUGH if u in ids})

    @property
    def empty(self) -> bool:
        return not (self.mid or self.abs_send_time or self.transport_cc or self.passthrough)

    def key(self) -> tuple[int, tuple[tuple[str, int], ...]]:
        """What the per-packet shared part (:meth:`tail`) depends on."""
        return self.abs_send_time, tuple(sorted(self.passthrough.items()))

    def tail(self, sent: bytes, values: tuple[tuple[str, bytes], ...]) -> bytes:
        """The elements shared by consumers with the same :meth:`key`: ``abs-send-time`` (``sent``)
        and the passthrough ``values`` this viewer negotiated."""
        out = element(self.abs_send_time, sent) if self.abs_send_time else b""
        for uri, value in values:
            ext_id = self.passthrough.get(uri)
            if ext_id and 1 <= len(value) <= 16:
                out += element(ext_id, value)
        return out


def header(b1: int, seq: int, ts: int, ssrc: int, ext: bytes) -> bytes:
    """A 12-byte RTP header plus a one-byte-form extension block holding the elements ``ext``."""
    ext += PADS[len(ext) & 3]
    return EXT_HEADER.pack(0x90, b1, seq, ts, ssrc, ONE_BYTE, len(ext) >> 2) + ext


def retransmission_header(out: Outbound, departures: Departures | None, b1: int, seq: int, ts: int, ssrc: int,
                          size: int) -> bytes:
    """The header of a retransmission (or a probe) of ``size`` payload bytes: ``abs-send-time`` and a
    ``transport-cc`` number (from ``departures``) when negotiated (the estimates count what
    retransmissions cost: a REMB viewer's estimator reads every packet stamped with ``abs-send-time``,
    RTX before unwrapping), no other extension."""
    if departures is None and not out.abs_send_time:
        return HEADER.pack(0x80, b1, seq, ts, ssrc)
    now = time.monotonic()
    ext = element(out.abs_send_time, abs_send_time(now)) if out.abs_send_time else b""
    if departures is not None:
        ext += element(out.transport_cc, departures.next(now, size + 20).to_bytes(2, "big"))
    return header(b1, seq, ts, ssrc, ext)
