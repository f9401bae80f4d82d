"""A transport's RTCP: what it reads (reports, NACK, PLI/FIR, REMB, transport-cc) and the reports it
writes once a tick (RR + REMB to a publisher, SRs to a subscriber). Composed into ``Transport``."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from sfu import rtcp, twcc

if TYPE_CHECKING:
    from sfu.producer import Producer
    from sfu.transport import Transport

REMB_BITRATE = 2_000_000
"""What we tell a publisher it may send in one encoding of its video, audio included (aiortc's VP8
encoder caps itself at 1.5 Mbit/s); a simulcast publisher may send its lower layers on top
(:func:`publisher_remb`)."""


def publisher_remb(producers: Iterable[Producer]) -> int:
    """The REMB a publisher transport is sent: :data:`REMB_BITRATE`, plus what the lower layers of each
    simulcast track it publishes were measured sending, so that its top layer may send what one
    encoding may. Chrome gives a REMB to its layers lowest first and the top one the rest: under a
    flat 2 Mbit/s, ``web/lib/show.js``'s q/h/f (150k/500k/1.5M at most) left the top layer ~1.2
    Mbit/s, and its viewers a worse picture than a broadcaster sending one encoding."""
    tracks = {id(p.simulcast): p.simulcast for p in producers if p.simulcast is not None}
    return REMB_BITRATE + round(sum(t.lower_layers_bps() for t in tracks.values()))


class TransportRtcp:
    """Owned by its transport (reads its producers, consumers and link state)."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def on_rtcp(self, data: bytes) -> None:
        t = self.transport
        try:
            for pt, fmt, body in rtcp.split(data):
                if pt == rtcp.SR:
                    ssrc, ntp, rtp_ts = rtcp.sr_info(body)
                    producer = t.producers.get(ssrc)
                    if producer is not None:
                        producer.on_sender_report(ntp, rtp_ts)
                elif pt == rtcp.RTPFB and fmt == rtcp.FMT_NACK:
                    consumer = t.consumers.get(rtcp.feedback_ssrcs(body)[1])
                    if consumer is not None:
                        consumer.on_nack(rtcp.nack_seqs(body))
                elif pt == rtcp.RTPFB and fmt == twcc.FMT_TWCC:
                    if t.consumers:
                        drops = t.link.estimator.drops
                        t.link.on_transport_feedback(twcc.parse(body), time.monotonic())
                        if t.link.estimator.drops != drops:
                            t.down_now()
                elif pt == rtcp.PSFB and fmt == rtcp.FMT_REMB:
                    bitrate = rtcp.remb_bitrate(body)
                    if bitrate is not None and t.consumers:
                        t.link.on_remb(bitrate, time.monotonic())
                elif pt == rtcp.RR and t.consumers:
                    now = time.monotonic()
                    t.link.on_receiver_loss(rtcp.rr_fractions(fmt, body, t.consumers), now)
                    t.link.round_trip.on_delays(rtcp.rr_delays(fmt, body, t.consumers), now)
                elif pt == rtcp.PSFB and fmt in (rtcp.FMT_PLI, rtcp.FMT_FIR):
                    media = rtcp.feedback_ssrcs(body)[1]
                    if fmt == rtcp.FMT_FIR and len(body) >= 12:
                        media = int.from_bytes(body[8:12], "big")
                    consumer = t.consumers.get(media)
                    if consumer is not None and not t.hidden:  # a tap's PLIs never go upstream
                        consumer.producer.keyframes.request()
        except ValueError:
            t.malformed_rtcp += 1

    def tick(self) -> None:
        """Once a second: follow the ICE pair; RR + REMB to a publisher, SRs to a subscriber."""
        t = self.transport
        if t.wire is None or t.closed or not t.wire.refresh():
            return
        if t.native is not None:
            t.native.refresh()
        parts: list[bytes] = []
        if t.feedback is not None:
            t.send_feedback(t.feedback.flush(next(iter(t.producers), 0)))
        if t.producers:
            for p in t.producers.values():
                rr = p.receiver_report(t.rtcp_ssrc)
                if rr is not None:
                    parts.append(rr)
                if p.is_keyframe is not None and any(not c.hidden for c in p.waiting):
                    p.keyframes.request()  # taps wait for the schedule, viewers ask again
                p.renack()
            video = [p.ssrc for p in t.producers.values() if p.kind == "video"]
            if video and parts:
                parts.append(rtcp.build_remb(t.rtcp_ssrc, publisher_remb(t.producers.values()), video))
        for c in t.consumers.values():
            if not c.closed:
                sr = c.sender_report()
                if sr is not None:
                    parts.append(sr)
                    t.link.round_trip.on_sender_report(sr, time.monotonic())
        if parts:
            t.wire.send_rtcp(b"".join(parts))
