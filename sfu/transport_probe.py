"""How a subscriber's link is probed before a viewer moves up a simulcast layer. Composed into ``Transport``.

Two ways, by what the viewer's link reports (``sfu.bwe``): with transport-cc, probe clusters of RTX
copies judged by its feedback (``sfu.probe`` bursts, like libwebrtc's prober); with REMB only (and
``abs-send-time`` on what we send), a ramp that keeps the viewer's incoming rate near its latest
REMB, padding with RTX copies until the REMB proves the next layer's rate. A hidden tap is never
probed (its RTX would be a trace), nor a viewer without RTX.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from sfu.probe import BURSTS, CLUSTER_S, OVERSHOOT, PAD_EVERY_S, Ramp, burst_times

if TYPE_CHECKING:
    from sfu.consumer import Consumer
    from sfu.producer import Producer
    from sfu.transport import Transport


class TransportProbing:
    """Owned by its transport (reads its link estimate and consumers)."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def estimate(self) -> float | None:
        """The viewer's bandwidth estimate (bit/s), None before its first feedback."""
        return self.transport.link.estimator.bitrate if self.transport.link.source else None

    def probe(self, consumer: Consumer, rate: float) -> str | None:
        """How this viewer's link can be probed: ``transport-cc`` (clusters judged by its feedback) or
        ``remb`` (ramps judged by its REMB: needs ``abs-send-time`` on what we send), None when it
        cannot be (no RTX, a hidden tap, no feedback yet); with ``rate`` > 0, probe for it when due."""
        link = self.transport.link
        if consumer.rtx_payload_type is None or self.transport.hidden:
            return None
        if link.source == "remb" and consumer.out.abs_send_time:
            if rate > 0:
                self._remb_ramp(consumer, rate)
            return "remb"
        if link.source != "transport-cc":
            return None
        if rate <= 0 or not link.prober.due(time.monotonic()):
            return "transport-cc"
        extra = max(0.2 * rate, OVERSHOOT * rate - link.estimator.acknowledged())
        per_burst = int(extra * CLUSTER_S / 8 / (BURSTS - 1))
        link.prober.begin(OVERSHOOT * rate, time.monotonic())
        loop = asyncio.get_running_loop()
        times = burst_times()
        for i, at in enumerate(times):
            loop.call_later(at, self._probe_burst, consumer, per_burst, i == len(times) - 1)
        return "transport-cc"

    def _remb_ramp(self, consumer: Consumer, rate: float) -> None:
        """Start a REMB ramp toward ``rate`` when one is due (one in flight follows the new need)."""
        prober, now = self.transport.link.remb_prober, time.monotonic()
        if prober.ramp is not None:
            prober.ramp.target = rate
            return
        remb = self.transport.link.estimator.remb
        if remb is None or not prober.due(now):
            return
        prober.begin(rate, remb, now)
        prober.pace(remb, consumer.producer.octets_received, now)
        asyncio.get_running_loop().call_later(PAD_EVERY_S, self._remb_pad, consumer, prober.ramp,
                                              consumer.producer)

    def _remb_pad(self, consumer: Consumer, ramp: Ramp | None, layer: Producer) -> None:
        """One pacing step of a REMB ramp: RTX copies up to the viewer's REMB, until the ramp ends."""
        prober = self.transport.link.remb_prober
        if self.transport.closed or consumer.closed or ramp is None or prober.ramp is not ramp:
            return
        now = time.monotonic()
        if prober.check(now) is not None:
            return
        if consumer.producer is not layer:  # moved (down) meanwhile: measure the new layer afresh
            layer, ramp.paced = consumer.producer, None
        consumer.send_probe(prober.pace(self.transport.link.ramp_basis(), layer.octets_received, now))
        asyncio.get_running_loop().call_later(PAD_EVERY_S, self._remb_pad, consumer, ramp, layer)

    def down_now(self) -> None:
        """The estimate just fell (a queue or losses): simulcast viewers go down now, not at the tick."""
        now = time.monotonic()
        for consumer in list(self.transport.consumers.values()):
            track = consumer.producer.simulcast
            if track is not None:
                track.recheck(consumer, now)

    def _probe_burst(self, consumer: Consumer, budget: int, last: bool) -> None:
        if self.transport.closed or consumer.closed:
            return
        try:
            consumer.send_probe(budget)
        finally:
            if last:
                self.transport.link.prober.end()
