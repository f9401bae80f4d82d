"""The SFU's packet counters as Prometheus metrics on the node's registry (forwarding loss).

The media plane counts per worker (``sfu.process.counters``): packets forwarded to subscribers and
sequence numbers they NACKed (each a packet lost on the SFU -> viewer leg, as the viewer saw it). A
task polls them every ``interval_s`` (worker processes answer over their pipe: never from a scrape),
and a collector exports the last sum. A replaced worker starts again from zero: Prometheus counters
allow that (``rate()`` treats it as a reset). A few figures are current counts, not totals (the
simulcast layers the worker's exporting pipes carry or hold): those are gauges.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sfu.process import counters
from sfu.worker import Worker
from switchboard.tasks import stop_task

log = logging.getLogger(__name__)

EXPORTED = {
    "forwarded": ("sfu_forwarded_packets", "RTP packets forwarded to subscribers (taps included)"),
    "nacked": ("sfu_nacked_packets", "Sequence numbers subscribers NACKed: packets lost on the SFU -> viewer leg"),
    "retransmitted": ("sfu_retransmitted_packets", "Packets sent again in answer to a subscriber's NACK"),
    "srtp_dropped": ("sfu_srtp_dropped_packets", "Packets dropped at SRTP protect (too big to send)"),
    "pipe_forged": ("sfu_pipe_forged_packets", "Datagrams dropped by a pipe between nodes for a missing or wrong seal"),
    "layer_switches": ("sfu_layer_switches", "Simulcast layer switches made for viewers (at the target's keyframe)"),
    "duplicates": ("sfu_duplicate_packets", "Publishers' packets dropped as already received (duplicates, late "
                   "repairs, RTX payload padding: Chrome's probes)"),
}
"""Counter key (``sfu.process.counters``) -> (metric name without ``_total``, help)."""

GAUGES = {
    "pipe_layers_crossing": ("sfu_pipe_layers_crossing", "Simulcast layers the node's exporting pipes carry now "
                             "(a layer the far side uses, or one lingering after its last use there)"),
    "pipe_layers_held": ("sfu_pipe_layers_held", "Simulcast layers the node's exporting pipes describe but hold "
                         "back now (nobody on the far side uses them)"),
}
"""Current count's key (``sfu.process.counters``) -> (metric name, help): a sum over workers now."""


class MediaMetrics(Collector):
    """Polls the SFU's counters and exports their sum over workers. ``close()`` is idempotent."""

    def __init__(self, media: Any, registry: CollectorRegistry, interval_s: float = 5.0) -> None:
        self._media = media
        self._registry = registry
        self._interval_s = interval_s
        self._totals: dict[str, int] = dict.fromkeys([*EXPORTED, *GAUGES], 0)
        self._task: asyncio.Task[None] | None = None
        registry.register(self)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                snapshots = await self._read()
                self._totals = {key: sum(int(s.get(key, 0)) for s in snapshots) for key in self._totals}
            except Exception:  # a worker being replaced: the next poll reads the new one
                log.warning("sfu counters unavailable", exc_info=True)
            await asyncio.sleep(self._interval_s)

    async def _read(self) -> list[dict[str, Any]]:
        if isinstance(self._media, Worker):
            return [counters(self._media)]
        read = getattr(self._media, "worker_counters", None)
        return list(await read()) if read is not None else []

    def collect(self) -> Iterator[Metric]:
        for key, (name, text) in EXPORTED.items():
            family = CounterMetricFamily(name, text)
            family.add_metric([], self._totals[key])
            yield family
        for key, (name, text) in GAUGES.items():
            gauge = GaugeMetricFamily(name, text)
            gauge.add_metric([], self._totals[key])
            yield gauge

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await stop_task(task)
            self._registry.unregister(self)
