"""Receiving simulcast from a publisher: the SDP answer that accepts its layers, and the demux of
its layers' SSRCs by ``rid`` (aiortc neither answers ``a=simulcast`` nor receives simulcast).

Chrome offers ``a=rid:<rid> send`` lines and ``a=simulcast:send <rid>;<rid>;...`` in a video section
and signals no SSRC for them: each layer's SSRC is learnt from its first packets, which carry the
``rid`` header extension (RTX packets carry ``repaired-rid``). The layers are taken in the order the
offer lists them, lowest first (the broadcaster page sends them so: ``sendEncodings`` from the most
scaled-down encoding to the full one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sfu import extensions
from sfu.simulcast import SimulcastTrack

if TYPE_CHECKING:
    from sfu.producer import Codec, Producer

MAX_LAYERS = 3


def offered_layers(offer: str) -> dict[str, list[str]]:
    """mid -> the rids of its ``a=simulcast:send`` (lowest first, at most :data:`MAX_LAYERS`; paused
    ``~`` ones and alternatives after the first left out), for the video sections that offer simulcast."""
    found: dict[str, list[str]] = {}
    for s in extensions.split_sdp(offer)[1]:
        if s.kind != "video" or s.mid is None or s.rejected:
            continue
        sent = {line[6:].split()[0] for line in s.lines
                if line.startswith("a=rid:") and len(line[6:].split()) > 1 and line[6:].split()[1] == "send"}
        for line in s.lines:
            if line.startswith("a=simulcast:"):
                parts = line[12:].split()
                if len(parts) >= 2 and parts[0] == "send":
                    rids = [alt.split(",")[0] for alt in parts[1].split(";")]
                    rids = [r for r in rids if r and not r.startswith("~") and r in sent]
                    if len(rids) >= 2:
                        found[s.mid] = rids[:MAX_LAYERS]
    return found


def accept_layers(answer: str, layers: dict[str, list[str]]) -> str:
    """The answer with ``a=rid:<rid> recv`` and ``a=simulcast:recv`` for each simulcast section."""
    if not layers:
        return answer
    session, sections = extensions.split_sdp(answer)
    for s in sections:
        rids = layers.get(s.mid or "")
        if rids is None or s.rejected:
            continue
        s.lines += [f"a=rid:{r} recv" for r in rids] + [f"a=simulcast:recv {';'.join(rids)}"]
    return extensions.join_sdp(session, sections)


@dataclass
class Pending:
    """One simulcast section whose layers are being learnt."""

    codec: Codec
    rtx_payload_type: int | None
    mid: str
    rids: list[str]
    track: SimulcastTrack = field(default_factory=lambda: SimulcastTrack([]))
    by_rid: dict[str, Producer] = field(default_factory=dict)


class LayerDemux:
    """A publisher transport's simulcast sections: an unknown SSRC becomes a layer's producer, or its
    RTX stream, by the ``rid``/``repaired-rid`` it carries. Only packets of unknown SSRCs come here."""

    def __init__(self) -> None:
        self.layers: dict[str, list[str]] = {}
        """mid -> rids the answer accepted."""
        self.pending: dict[int, Pending] = {}
        """Payload type (the media's and its RTX's) -> its section."""

    def expect(self, codec: Codec, rtx_payload_type: int | None, mid: str) -> None:
        if codec.payload_type in self.pending:
            return
        p = Pending(codec, rtx_payload_type, mid, self.layers[mid])
        self.pending[codec.payload_type] = p
        if rtx_payload_type is not None:
            self.pending[rtx_payload_type] = p

    def on_unknown(self, data: bytes, ssrc: int, extension_ids: dict[str, dict[str, int]],
                   add: Callable[[Codec, int, str, SimulcastTrack, int], Producer],
                   add_rtx: Callable[[int, Producer], None]) -> bool:
        """Handle a packet of an unknown SSRC; False when it is no layer of ours."""
        p = self.pending.get(data[1] & 0x7F)
        if p is None or not data[0] & 0x10:
            return False
        found = extensions.elements(data)
        ids = extensions.Inbound.of(extension_ids.get(p.mid, {}))
        rtx = p.rtx_payload_type is not None and data[1] & 0x7F == p.rtx_payload_type
        rid = found.get(ids.repaired_rid if rtx else ids.rid, b"").decode("ascii", "replace")
        if rid not in p.rids:
            return False
        if rtx:
            layer = p.by_rid.get(rid)
            if layer is None:
                return False
            add_rtx(ssrc, layer)
            return True
        if rid in p.by_rid:
            return False
        p.by_rid[rid] = add(p.codec, ssrc, p.mid, p.track, p.rids.index(rid))
        return True
