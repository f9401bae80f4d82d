"""The matchmaker's Prometheus metrics (on the process registry, served at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

WAIT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 300)


class MatchmakerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = registry if registry is not None else CollectorRegistry()
        self.queue_length = Gauge("matchmaker_queue_length", "Tickets waiting in the queue", registry=registry)
        self.wait = Histogram("matchmaker_wait_seconds", "Time from queue.join to a pair, per user",
                              buckets=WAIT_BUCKETS, registry=registry)
        self.pairs = Counter("matchmaker_pairs", "Pairs made (rate() gives pairs/s)", registry=registry)
        self.widened = Counter("matchmaker_widened_pairs", "Pairs that needed widened soft preferences",
                               ["step"], registry=registry)
        self.lost = Counter("matchmaker_claims_refused", "Proposed pairs the atomic claim refused",
                            ["reason"], registry=registry)
        self.round = Histogram("matchmaker_round_seconds", "One pairing round (read, score, claim)",
                               registry=registry)
