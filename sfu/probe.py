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


# --- viewers without transport-cc: REMB ramps ---------------------------------------------------

REMB_FIRST_S = 2.0
"""A REMB viewer's first ramp waits this long after its first REMB (its estimator's start)."""
REMB_INTERVAL_S = 1.0
"""Between a ramp that proved its target and the next one (the next layer up)."""
REMB_BACKOFF_S = 4.0
"""After a ramp that failed; doubled by each further failure, up to ``REMB_MAX_INTERVAL_S``."""
REMB_MAX_INTERVAL_S = 32.0
REMB_STALL_S = 3.0
"""A ramp whose REMB has not risen for this long failed (the viewer's estimator holds)."""
REMB_MAX_S = 30.0
"""The longest ramp (aiortc's estimate grows 8 % a second: the low layer's to the top's ~ 25 s)."""
REMB_FALL = 0.9
"""A REMB under this fraction of the highest during the ramp: the viewer saw a queue (overuse)."""
REMB_MAX_LOSS = 0.05
"""A receiver report with more lost during a ramp fails it: a shaped link that drops rather than
queues (a short ``tbf``) never shows a delay-based estimator its queue, only losses."""
PAD_RATIO = 0.9
"""While ramping, the viewer's incoming rate is held at this fraction of its own latest REMB."""
PAD_EVERY_S = 0.05


@dataclass
class Ramp:
    """One REMB ramp: padding that follows the viewer's estimate up until it reaches ``target``."""

    target: float
    started: float
    peak: float
    """The highest REMB since the ramp started (bit/s)."""
    peak_at: float
    paced: tuple[float, int] | None = None
    """(time, layer octets received) at the last pacing step."""
    media: float = 0.0
    """The viewer's media rate (bit/s), from its layer's received octets."""


class RembProber:
    """Probing a viewer whose only feedback is REMB (aiortc's ``RemoteBitrateEstimator``, fed with
    every packet stamped with ``abs-send-time``, RTX included, before unwrapping it).

    Such an estimator caps itself at ~1.5x what arrives and grows ~8 % a second, and (unlike
    libwebrtc's) does not jump on a short probe cluster: a ramp keeps the viewer's incoming rate at
    ``PAD_RATIO`` of its own latest REMB with RTX copies of what it already has, so its estimate can
    climb to the next layer's need. Judged by the REMBs that follow: reaching ``target`` proves it; a
    fall (a queue on its link: a shaped link never carries more than its own estimate allows), no
    rise for ``REMB_STALL_S``, ``REMB_MAX_S``, or a receiver report with losses fail it, and failures
    back off. Pure: times passed in."""

    def __init__(self) -> None:
        self.ramp: Ramp | None = None
        self.first_remb: float | None = None
        self.last_end: float | None = None
        self.interval = REMB_FIRST_S
        self.sent = 0
        """Ramps started."""
        self.proved = 0
        self.failed = 0

    def due(self, now: float) -> bool:
        """No ramp in flight and the interval since the last one (or the first REMB) has passed."""
        self.check(now)
        since = self.last_end if self.last_end is not None else self.first_remb
        return self.ramp is None and since is not None and now - since >= self.interval

    def begin(self, target: float, remb: float, now: float) -> None:
        self.ramp = Ramp(target, now, remb, now)
        self.sent += 1

    def on_remb(self, bitrate: float, now: float) -> bool | None:
        """A REMB arrived: True when it proves the ramp's target, False when it fails the ramp, None
        while the ramp goes on (or none is in flight)."""
        if self.first_remb is None:
            self.first_remb = now
        r = self.ramp
        if r is None:
            return None
        if bitrate >= r.target:
            return self._end(True, now)
        if bitrate < REMB_FALL * r.peak:
            return self._end(False, now)
        if bitrate > r.peak:
            r.peak, r.peak_at = bitrate, now
        return self.check(now)

    def on_loss(self, fraction: float, now: float) -> bool | None:
        """A receiver report's loss fraction: False (the ramp ended) when it is over ``REMB_MAX_LOSS``."""
        if self.ramp is not None and fraction > REMB_MAX_LOSS:
            return self._end(False, now)
        return None

    def check(self, now: float) -> bool | None:
        """False (and the ramp ended) when it stalled or ran too long."""
        r = self.ramp
        if r is not None and (now - r.peak_at > REMB_STALL_S or now - r.started > REMB_MAX_S):
            return self._end(False, now)
        return None

    def pace(self, remb: float, octets: int, now: float) -> int:
        """Bytes of padding to send now, given the viewer's latest REMB and its layer's received
        octets (the media it gets): what keeps it at ``PAD_RATIO`` of its REMB since the last step."""
        r = self.ramp
        if r is None:
            return 0
        last, r.paced = r.paced, (now, octets)
        if last is None or now <= last[0]:
            return 0
        elapsed = now - last[0]
        sample = 8 * max(0, octets - last[1]) / elapsed
        r.media = sample if r.media == 0 else 0.8 * r.media + 0.2 * sample
        return int(max(0.0, PAD_RATIO * remb - r.media) * min(elapsed, 0.2) / 8)

    def _end(self, proved: bool, now: float) -> bool:
        self.ramp, self.last_end = None, now
        if proved:
            self.proved += 1
            self.interval = REMB_INTERVAL_S
        else:
            self.failed += 1
            self.interval = min(REMB_MAX_INTERVAL_S, max(REMB_BACKOFF_S, 2 * self.interval))
        return proved
