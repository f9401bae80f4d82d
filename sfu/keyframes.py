"""The keyframe schedule: every published video track is asked for a keyframe at a fixed period.

Why: a moderator's tap must start at a keyframe without asking for one (a PLI sent only because a
tap opened would show in the publisher's ``getStats``), and evidence clips need a keyframe at least
every period too. So the router asks each of its publishers' video producers for a keyframe every
``interval`` seconds whoever watches, and hidden consumers simply wait for the next one. Viewer
requests (a join, a viewer's PLI) still go upstream through the producer's merged, rate-limited
:class:`sfu.producer.KeyframeRequester`, as do these.

Driven by the worker's ticker (``Router.tick``), so a request goes out on the first tick at or after
its due time: the period is ``interval`` rounded up to the tick.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sfu.producer import Producer


KEYFRAME_INTERVAL_S = 4.0
"""Default period (the setting ``sfu.keyframe_interval_s``)."""


class KeyframeSchedule:
    """One router's schedule. The router adds its publishers' producers (never piped ones: the origin
    worker's schedule covers those) and removes them when they close."""

    def __init__(self, interval: float) -> None:
        if interval <= 0:
            raise ValueError("keyframe interval must be > 0")
        self.interval = interval
        self._due: dict[str, tuple[Producer, float]] = {}
        self.fired: dict[str, int] = {}
        """Scheduled requests made per producer id (what a publisher's PLI count must equal when
        nobody joined: see tests/sfu/test_taps.py)."""

    def add(self, producer: Producer, now: float) -> None:
        """Schedule a video producer: first request one period after it appeared (the publisher
        starts with a keyframe), then every period."""
        if producer.is_keyframe is None or producer.producer_id in self._due:
            return
        self._due[producer.producer_id] = (producer, now + self.interval)
        self.fired.setdefault(producer.producer_id, 0)

    def remove(self, producer: Producer) -> None:
        self._due.pop(producer.producer_id, None)

    def tick(self, now: float) -> None:
        """Request a keyframe from every producer whose time has come."""
        for producer_id, (producer, due) in list(self._due.items()):
            if producer.closed:
                del self._due[producer_id]
                continue
            if now < due:
                continue
            # The next one a period later on the same grid; after a stall, a period from now.
            following = due + self.interval
            self._due[producer_id] = (producer, following if following > now else now + self.interval)
            self.fired[producer_id] += 1
            producer.keyframes.request()
