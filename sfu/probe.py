"""Probing a viewer's link before a step up (libwebrtc's probe clusters, mediasoup's RTX probation).

An estimate never grows far past what a viewer receives (``sfu.bwe`` caps itself near 1.5x the
acknowledged rate), so a viewer on the low layer of a simulcast track cannot learn from its estimate
alone that its link now carries the next layer. Stepping up blindly (a trial) sends a whole layer
into a link that may not carry it: a queue, losses and a freeze before the drop back. A probe costs
a few kilobytes instead: for ``CLUSTER_S`` the viewer gets RTX copies of packets it already has
(receivers drop duplicates: libwebrtc's own "payload padding") at the rate the next layer needs,
and the viewer's transport-cc feedback says at what rate they arrived. When the link carried it,
the estimate is raised to the measured rate and the viewer steps up at once (a keyframe asked for
at the same time); when it did not, the queue it built is a fraction of a second's worth of bytes.

:class:`Cluster` is pure (sequence numbers and times in, a rate out); :class:`Prober` is one viewer
transport's state (one cluster in flight at a time).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sfu.twcc import Departures, Feedback

CLUSTER_S = 0.1
"""How long a cluster is sent for (in ``BURSTS`` bursts, the first at once)."""
BURSTS = 5
OVERSHOOT = 1.2
"""A cluster is sent this much above the rate it must prove (pacing in bursts loses some of it)."""
INTERVAL_S = 2.0
"""At least this long between two clusters of one viewer (a failed one cost it a short queue)."""
MAX_INTERVAL_S = 4.0
"""Each failed cluster doubles the interval up to this (a link that is lifted is found within it)."""
TIMEOUT_S = 1.5
"""A cluster whose feedback is still incomplete this long after it started is judged as it is."""
RECEIVED_RATIO = 0.9
"""A cluster that arrived at this fraction of the rate it was sent at proves that rate."""
MAX_LOSS = 0.1


def burst_times() -> list[float]:
    """When each burst of a cluster goes out, relative to its start."""
    return [i * CLUSTER_S / (BURSTS - 1) for i in range(BURSTS)]


def rate_of(packets: list[tuple[float, float | None, int]]) -> float | None:
    """What a cluster proves, in bit/s: ``packets`` are (send time, arrival time or None, size) in
    sequence order. The rate it arrived at, when it arrived at (nearly) the rate it was sent at, then
    capped at that; None when too few packets arrived to tell."""
    arrived = sorted((a, size) for _, a, size in packets if a is not None)
    if len(arrived) < 4 or len(packets) < 4:
        return None
    if (len(packets) - len(arrived)) / len(packets) > MAX_LOSS:
        return 0.0
    sends = sorted((s, size) for s, _, size in packets)
    send_span = sends[-1][0] - sends[0][0]
    recv_span = arrived[-1][0] - arrived[0][0]
    if send_span <= 0:
        return None
    sent = 8 * sum(size for _, size in sends[:-1]) / send_span
    received = 8 * sum(size for _, size in arrived[1:]) / max(recv_span, 1e-3)
    return min(sent, received) if received >= RECEIVED_RATIO * sent else received


@dataclass
class Cluster:
    """One probe cluster: the transport-cc numbers from its first packet to its last (the viewer's
    media between them counts too: it shares the link) and what arrived of them."""

    first: int
    started: float
    target: float
    """The rate (bit/s) the cluster was sent at."""
    last: int | None = None
    """Set when the last burst went out."""
    arrivals: dict[int, float | None] = field(default_factory=dict)

    def covers(self, seq: int) -> bool:
        last = self.last if self.last is not None else (self.first + 0x7FFF) & 0xFFFF
        return (seq - self.first) & 0xFFFF <= (last - self.first) & 0xFFFF

    def complete(self) -> bool:
        return self.last is not None and len(self.arrivals) > (self.last - self.first) & 0xFFFF


class Prober:
    """A viewer transport's probes: one cluster at a time, judged from its feedback."""

    def __init__(self, departures: Departures) -> None:
        self.departures = departures
        self.cluster: Cluster | None = None
        self.last_start = -1e9
        self.interval = INTERVAL_S
        self.sent = 0
        """Clusters sent."""
        self.proved: list[float] = []
        """What the last clusters proved (bit/s), newest last (a few kept, for stats and tests)."""

    def due(self, now: float) -> bool:
        if self.cluster is not None and now - self.cluster.started > TIMEOUT_S:
            self._judge()
        return self.cluster is None and now - self.last_start >= self.interval

    def begin(self, target: float, now: float) -> None:
        """A cluster starts: its first packet gets the next transport-cc number."""
        self.cluster = Cluster((self.departures.seq + 1) & 0xFFFF, now, target)
        self.last_start = now
        self.sent += 1

    def end(self) -> None:
        """The cluster's last packet went out."""
        if self.cluster is not None:
            self.cluster.last = self.departures.seq

    def on_feedback(self, feedback: Feedback) -> float | None:
        """Record what the feedback says of the cluster's packets; the rate it proved once complete."""
        c = self.cluster
        if c is None:
            return None
        for seq, at in feedback.arrivals:
            if c.covers(seq):
                c.arrivals[seq] = None if at is None else at / 1e6
        return self._judge() if c.complete() else None

    def _judge(self) -> float | None:
        """What the cluster proved; a cluster short of what it had to prove doubles the interval."""
        c, self.cluster = self.cluster, None
        if c is None or c.last is None:
            return None
        packets = []
        n = (c.last - c.first) & 0xFFFF
        for i in range(n + 1):
            seq = (c.first + i) & 0xFFFF
            sent, size = self.departures.sent_at(seq)
            packets.append((sent, c.arrivals.get(seq), size))
        rate = rate_of(packets)
        if rate is not None:
            self.proved = [*self.proved[-7:], rate]
        failed = rate is None or rate < RECEIVED_RATIO * c.target / OVERSHOOT
        self.interval = min(MAX_INTERVAL_S, 2 * self.interval) if failed else INTERVAL_S
        return rate
