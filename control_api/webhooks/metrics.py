"""The dispatcher's Prometheus metrics (on the process registry, served at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400)


class WebhookMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = registry if registry is not None else CollectorRegistry()
        self.attempts = Counter("webhook_attempts", "Delivery attempts by outcome (ok, http_error, timeout, error)",
                                ["outcome"], registry=registry)
        self.attempt_seconds = Histogram("webhook_attempt_seconds", "One attempt: POST to the endpoint's answer",
                                         buckets=BUCKETS, registry=registry)
        self.delivery_seconds = Histogram("webhook_delivery_seconds",
                                          "From the event's record to its successful delivery (retries included)",
                                          buckets=BUCKETS, registry=registry)
        self.failed = Counter("webhook_deliveries_failed", "Deliveries given up after webhooks.retry_for_s",
                              registry=registry)
