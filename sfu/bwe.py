"""Send-side bandwidth estimate of one viewer transport (a small GCC, after libwebrtc's and mediasoup's).

Fed with what the viewer's transport-cc feedback says (:meth:`Estimator.on_feedback`), or with its
REMB and receiver-report loss when transport-cc was not negotiated (:meth:`Estimator.on_remb`,
:meth:`Estimator.on_loss`). The estimate is the smaller of two:

* delay-based: packets are grouped in 5 ms bursts by send time; the growth of one-way delay
  between groups goes through a trendline filter (least-squares slope over the last 20 groups of
  the smoothed accumulated delay); a slope over an adaptive threshold is *overuse* (the queue
  grows: the rate drops to 85 % of what the viewer acknowledged receiving), under it *normal*
  (the rate grows 8 % a second, or by about one packet per round trip once near the last drop);
* loss-based: over 10 % loss the rate drops by half the loss fraction, under 2 % it may grow.

Pure: times are passed in, nothing is scheduled. Rates in bits per second.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from sfu.probe import Prober, RembProber
from sfu.twcc import Departures, Feedback

GROUP_S = 0.005
WINDOW = 20
SMOOTHING = 0.9
TREND_GAIN = 4.0
THRESHOLD_MS = 12.5
K_UP, K_DOWN = 0.0087, 0.039
OVERUSE_TIME_S = 0.010
BETA = 0.85
INCREASE_PER_S = 0.08
LOSS_HIGH, LOSS_LOW = 0.10, 0.02
PROBE_HOLD_S = 4.0
"""How long a probe's proof holds the estimate up while the viewer's rate catches up with it."""
LOSS_WINDOW = 40
"""Packets a transport-cc loss fraction is computed over."""


@dataclass(frozen=True)
class Limits:
    """The range an estimate moves in."""

    start: int = 1_000_000
    minimum: int = 50_000
    maximum: int = 10_000_000


class Trendline:
    """Delay gradient of packet groups -> ``overuse`` / ``normal`` / ``underuse``."""

    def __init__(self) -> None:
        self.group: tuple[float, float, float] | None = None
        """The current group: (first send time, last send time, last arrival time)."""
        self.previous: tuple[float, float] | None = None
        """(last send, last arrival) of the group before."""
        self.accumulated = 0.0
        self.smoothed = 0.0
        self.points: deque[tuple[float, float]] = deque(maxlen=WINDOW)
        self.first_arrival: float | None = None
        self.deltas = 0
        self.threshold = THRESHOLD_MS
        self.last_update: float | None = None
        self.overuse_since: float | None = None
        self.previous_trend = 0.0
        self.state = "normal"

    def add(self, sent: float, arrived: float) -> str:
        group = self.group
        if group is None or sent - group[0] > GROUP_S:
            if group is not None:
                self._close(group)
            self.group = (sent, sent, arrived)
        else:
            self.group = (group[0], max(group[1], sent), max(group[2], arrived))
        return self.state

    def _close(self, group: tuple[float, float, float]) -> None:
        _, sent, arrived = group
        if self.previous is not None:
            delay_ms = ((arrived - self.previous[1]) - (sent - self.previous[0])) * 1000
            self._update(delay_ms, arrived)
        self.previous = (sent, arrived)

    def _update(self, delay_ms: float, arrived: float) -> None:
        self.deltas = min(self.deltas + 1, 1000)
        if self.first_arrival is None:
            self.first_arrival = arrived
        self.accumulated += delay_ms
        self.smoothed = SMOOTHING * self.smoothed + (1 - SMOOTHING) * self.accumulated
        self.points.append(((arrived - self.first_arrival) * 1000, self.smoothed))
        trend = self.previous_trend
        if len(self.points) == WINDOW:
            trend = slope(list(self.points))
        modified = min(self.deltas, 60) * trend * TREND_GAIN
        if modified > self.threshold:
            if self.overuse_since is None:
                self.overuse_since = arrived
            if arrived - self.overuse_since >= OVERUSE_TIME_S and trend >= self.previous_trend:
                self.state = "overuse"
        elif modified < -self.threshold:
            self.overuse_since = None
            self.state = "underuse"
        else:
            self.overuse_since = None
            self.state = "normal"
        self.previous_trend = trend
        self._adapt(modified, arrived)

    def _adapt(self, modified: float, now: float) -> None:
        if abs(modified) > self.threshold + 15:  # a spike: do not let it move the threshold
            self.last_update = now
            return
        k = K_DOWN if abs(modified) < self.threshold else K_UP
        elapsed_ms = min((now - self.last_update) * 1000, 100.0) if self.last_update is not None else 0.0
        self.threshold = min(600.0, max(6.0, self.threshold + k * (abs(modified) - self.threshold) * elapsed_ms))
        self.last_update = now


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (x, y) points (0 when x does not vary)."""
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    num = sum((x - mx) * (y - my) for x, y in points)
    den = sum((x - mx) ** 2 for x, _ in points)
    return num / den if den else 0.0


class Estimator:
    """The estimate of one viewer transport."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.delay_based = float(self.limits.start)
        self.loss_based = float(self.limits.start)
        self.trend = Trendline()
        self.received: deque[tuple[float, int]] = deque()
        """(arrival time, size) of acknowledged packets over the last second: the acknowledged rate."""
        self.last_decrease: float | None = None
        self.rate_at_decrease: float | None = None
        self.last_time: float | None = None
        self.loss = 0.0
        self.last_loss: float | None = None
        self._window = (0, 0)
        """(received, lost) since the loss fraction was last evaluated, at ``_window_start``."""
        self._window_start: float | None = None
        self.last_loss_decrease: float | None = None
        self.remb: int | None = None
        self.overuses = 0
        self.drops = 0
        """Times the estimate was lowered (overuse or loss): simulcast viewers are re-chosen at once."""
        self.probed: tuple[float, float] | None = None
        """(rate, when) a probe cluster last proved (``sfu.probe``): the cap by what gets through
        does not pull the estimate under it for ``PROBE_HOLD_S``."""

    @property
    def bitrate(self) -> int:
        """The estimate in bits per second."""
        if self.remb is not None:  # the viewer's own delay-based estimate stands in for ours
            estimate = min(self.loss_based, self.remb)
        else:
            estimate = min(self.delay_based, self.loss_based)
        return int(max(self.limits.minimum, min(self.limits.maximum, estimate)))

    def acknowledged(self) -> float:
        """Bits per second the viewer reported receiving over the last second (0 before any)."""
        if len(self.received) < 2:
            return 0.0
        span = max(self.received[-1][0] - self.received[0][0], 0.05)
        return sum(size for _, size in self.received) * 8 / span

    def on_feedback(self, packets: list[tuple[float, float, int]], lost: int, now: float) -> None:
        """One transport-cc feedback: (send time, arrival time, size) of the packets that arrived,
        in sequence order, and how many were reported lost. ``now`` is the sender's clock."""
        state = self.trend.state
        for sent, arrived, size in packets:
            state = self.trend.add(sent, arrived)
            self.received.append((arrived, size))
        while self.received and self.received[-1][0] - self.received[0][0] > 1.0:
            self.received.popleft()
        self._window = (self._window[0] + len(packets), self._window[1] + lost)
        total = sum(self._window)
        if self._window_start is None:
            self._window_start = now
        # loss over enough packets (or half a second at low rates), not per (small) feedback
        if total >= LOSS_WINDOW or (total and now - self._window_start >= 0.5):
            self.on_loss(self._window[1] / total, now)
            self._window = (0, 0)
            self._window_start = now
        self._delay(state, now)

    def _delay(self, state: str, now: float) -> None:
        elapsed = min(now - self.last_time, 1.0) if self.last_time is not None else 0.0
        self.last_time = now
        incoming = self.acknowledged()
        if state == "overuse":
            self.probed = None
            if self.last_decrease is None or now - self.last_decrease > 0.2:
                self.overuses += 1
                base = incoming if incoming > 0 else self.delay_based
                self.delay_based = min(self.delay_based, BETA * base)
                self.last_decrease = now
                self.rate_at_decrease = self.delay_based
                self.drops += 1
        elif state == "normal":
            near = self.rate_at_decrease is not None and self.delay_based < 1.5 * self.rate_at_decrease
            if near:
                self.delay_based += max(1000.0, 1200 * 8 * elapsed * 5)  # ~ one packet per 200 ms RTT
            else:
                self.delay_based *= (1 + INCREASE_PER_S) ** elapsed
            if incoming > 0:  # never far above what actually gets through (or what a probe proved)
                probed = self.probed[0] if self.probed and now - self.probed[1] < PROBE_HOLD_S else 0.0
                self.delay_based = min(self.delay_based, max(1.5 * incoming + 10_000, probed))
        self.delay_based = max(float(self.limits.minimum), min(float(self.limits.maximum), self.delay_based))

    def on_loss(self, fraction: float, now: float) -> None:
        """A loss fraction (transport-cc feedback, or a receiver report's ``fraction lost / 256``)."""
        elapsed = min(now - self.last_loss, 1.0) if self.last_loss is not None else 0.0
        self.last_loss = now
        self.loss = fraction
        if fraction > LOSS_HIGH:
            if self.last_loss_decrease is None or now - self.last_loss_decrease > 0.3:
                self.loss_based = min(self.loss_based, self.bitrate) * (1 - 0.5 * fraction)
                self.last_loss_decrease = now
                self.drops += 1
        elif fraction < LOSS_LOW:  # grow like the delay-based side (REMB without transport-cc), not far past it
            delay_based = self.delay_based if self.remb is None else self.remb
            self.loss_based = min(self.loss_based * (1 + INCREASE_PER_S) ** elapsed,
                                  max(self.loss_based, 1.5 * delay_based))
        self.loss_based = max(float(self.limits.minimum), min(float(self.limits.maximum), self.loss_based))

    def on_probe(self, rate: float, now: float) -> None:
        """A probe cluster arrived at ``rate`` (bit/s): the link carries that much now."""
        if rate > self.bitrate:
            self.delay_based = max(self.delay_based, rate)
            self.loss_based = max(self.loss_based, rate)
            self.probed = (rate, now)

    def on_remb(self, bitrate: int) -> None:
        """The viewer's own estimate (REMB): the cap when transport-cc is not negotiated."""
        self.remb = bitrate


class RoundTrip:
    """The round trip to a viewer, from its receiver reports echoing our sender reports (RFC 3550
    6.4.1: now - when we sent the SR its LSR names - the DLSR it held it), smoothed like TCP's SRTT."""

    KEEP = 16
    """Sender reports remembered (by the middle 32 bits of their NTP time): a few seconds' worth."""

    def __init__(self) -> None:
        self.sent: dict[int, float] = {}
        self.rtt: float | None = None
        """Seconds, once a receiver report echoed one of our sender reports."""

    def on_sender_report(self, sr: bytes, now: float) -> None:
        self.sent[int.from_bytes(sr[10:14], "big")] = now
        if len(self.sent) > self.KEEP:
            del self.sent[next(iter(self.sent))]

    def on_delays(self, delays: list[tuple[int, int]], now: float) -> None:
        """``(LSR, DLSR)`` pairs of the viewer's report blocks about our streams."""
        for lsr, dlsr in delays:
            sent = self.sent.get(lsr)
            if sent is None:
                continue
            sample = now - sent - dlsr / 65536
            if sample >= 0:
                self.rtt = sample if self.rtt is None else 0.875 * self.rtt + 0.125 * sample


class LinkEstimate:
    """A viewer transport's side: the packets it numbered (``departures``, written by its consumers)
    and the estimate its feedback feeds: transport-cc when it sends that, else REMB and RR loss."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.departures = Departures()
        self.estimator = Estimator(limits)
        self.round_trip = RoundTrip()
        self.prober = Prober(self.departures)
        self.remb_prober = RembProber()
        self.source: str | None = None
        """``transport-cc`` or ``remb`` once the viewer's feedback fed the estimate."""

    def use_departures(self, departures: Departures) -> None:
        """Number packets with ``departures`` from now on (the native fan-out's, kept in C): the
        estimate and the prober read the same numbering the wire writes."""
        self.departures = departures
        self.prober.departures = departures

    def on_transport_feedback(self, feedback: Feedback, now: float) -> None:
        packets, lost = self.departures.resolve(feedback)
        if packets or lost:
            self.source = "transport-cc"
            self.estimator.remb = None  # REMB only stands in when there is no transport-cc
            self.estimator.on_feedback(packets, lost, now)
            proved = self.prober.on_feedback(feedback)
            if proved is not None:
                self.estimator.on_probe(proved, now)

    def on_remb(self, bitrate: int, now: float) -> bool | None:
        """The viewer's REMB (ignored once it sent transport-cc); what it says of a REMB ramp in
        flight (``sfu.probe.RembProber``: True proved, False failed)."""
        if self.source == "transport-cc":
            return None
        self.estimator.on_remb(bitrate)
        self.source = "remb"
        proved = self.remb_prober.on_remb(bitrate, now)
        if proved:  # the loss side (slow to grow, or never fed: no receiver reports) follows the proof
            self.estimator.on_probe(bitrate, now)
        return proved

    def on_receiver_loss(self, fractions: list[int], now: float) -> None:
        """``fraction lost`` (0-255) of the viewer's receiver report blocks about our streams."""
        if self.source != "transport-cc":
            for fraction in fractions:
                self.estimator.on_loss(fraction / 256, now)
                self.remb_prober.on_loss(fraction / 256, now)

    def ramp_basis(self) -> float:
        """What a REMB ramp pads up to: the viewer's REMB, or the loss side when that is lower (it
        reported losses: the link drops what the REMB would allow)."""
        est = self.estimator
        remb = float(est.remb or 0)
        return min(remb, est.loss_based) if est.last_loss is not None else remb

    def stats(self) -> dict[str, Any]:
        est = self.estimator
        rtt = self.round_trip.rtt
        return {"available_outgoing_bitrate": est.bitrate if self.source else None,
                "estimate_source": self.source, "loss": round(est.loss, 4),
                "rtt_ms": round(rtt * 1000, 1) if rtt is not None else None}
