"""aiortc's receive-side bandwidth estimator (``aiortc.rate``), the same figures for less CPU; private.

Every aiortc ``RTCRtpReceiver`` builds a ``RemoteBitrateEstimator`` (REMB), and the load generator's
counting viewers feed one per viewer with every packet (:class:`sfu.aiortc_private.lab.SocketRemb`).
Two of its parts cost far more than their work needs:

* ``RateCounter`` keeps 1000 one-millisecond buckets as 1000 ``RateBucket`` objects, built twice per
  estimator (at construction and at its first packet: ``reset``), and forgets old ones one
  millisecond at a time in a Python loop on every packet (``_erase_old``);
* ``OveruseEstimator.update_min_frame_period`` walks its 60 last deltas in a Python loop per frame.

:class:`QuickRateCounter` keeps the buckets as two lists of ints and clears elapsed ones by slices;
:class:`QuickOveruseEstimator` takes the minimum with the builtin. Both give exactly aiortc's values
(``tests/sfu/test_rate_estimator.py`` feeds the same packets to both and compares every REMB and the
state). :class:`QuickRemoteBitrateEstimator` is aiortc's estimator made of them, and
:func:`use_quick_rate_estimation` makes aiortc's receivers build it (``aiortc.rtcrtpreceiver``
imports ``RemoteBitrateEstimator`` by name: that name is replaced in that module). Internals touched:
``RateCounter``'s and ``OveruseEstimator``'s private state, ``RemoteBitrateEstimator.__init__``'s
attributes, ``aiortc.rtcrtpreceiver.RemoteBitrateEstimator``; :func:`aiortc_sources` digests their source, which
``tests/sfu/test_rate_estimator.py`` pins.
"""

from __future__ import annotations

import hashlib
import inspect

import aiortc.rtcrtpreceiver
from aiortc import rate


class QuickRateCounter(rate.RateCounter):
    """``aiortc.rate.RateCounter`` (the bytes received in 1 ms buckets over a window) with the buckets
    as two int lists; same ``add``/``rate``/``reset`` results."""

    def reset(self) -> None:
        self._counts = [0] * self._window_size
        self._values = [0] * self._window_size
        self._origin_index = 0
        self._origin_ms: int | None = None
        self._total_count = 0
        self._total_value = 0

    def add(self, value: int, now_ms: int) -> None:
        if self._origin_ms is None:
            self._origin_ms = now_ms
        else:
            self._erase_old(now_ms)
        index = (self._origin_index + now_ms - self._origin_ms) % self._window_size
        self._counts[index] += 1
        self._values[index] += value
        self._total_count += 1
        self._total_value += value

    def rate(self, now_ms: int) -> int | None:
        if self._origin_ms is not None:
            self._erase_old(now_ms)
            active_window_size = now_ms - self._origin_ms + 1
            if self._total_count > 0 and active_window_size > 1:
                return round(self._scale * self._total_value / active_window_size)
        return None

    def _erase_old(self, now_ms: int) -> None:
        assert self._origin_ms is not None
        size = self._window_size
        steps = now_ms - size + 1 - self._origin_ms
        if steps <= 0:
            return
        start = self._origin_index
        if steps >= size:  # the whole window went by: every bucket is cleared
            self._counts = [0] * size
            self._values = [0] * size
            self._total_count = 0
            self._total_value = 0
        else:
            end = start + steps
            spans = [(start, end)] if end <= size else [(start, size), (0, end - size)]
            for a, b in spans:
                self._total_count -= sum(self._counts[a:b])
                self._total_value -= sum(self._values[a:b])
                self._counts[a:b] = [0] * (b - a)
                self._values[a:b] = [0] * (b - a)
        self._origin_index = (start + steps) % size
        self._origin_ms += steps


class QuickOveruseEstimator(rate.OveruseEstimator):
    """``aiortc.rate.OveruseEstimator`` whose smallest frame period of the last 60 comes from ``min``."""

    def update_min_frame_period(self, ts_delta: float) -> float:
        history = self.ts_delta_hist
        if len(history) >= rate.MIN_FRAME_PERIOD_HISTORY_LENGTH:
            history.pop(0)
        found = min(history, default=ts_delta)
        history.append(ts_delta)
        return found if found < ts_delta else ts_delta


class QuickRemoteBitrateEstimator(rate.RemoteBitrateEstimator):
    """``aiortc.rate.RemoteBitrateEstimator`` made of :class:`QuickRateCounter` and
    :class:`QuickOveruseEstimator` (its ``__init__`` written out: aiortc's would build the slow
    counter first)."""

    def __init__(self) -> None:  # aiortc's, pinned by aiortc_sources()
        self.incoming_bitrate = QuickRateCounter(1000, 8000)
        self.incoming_bitrate_initialized = True
        self.inter_arrival = rate.InterArrival(
            (rate.TIMESTAMP_GROUP_LENGTH_MS << rate.INTER_ARRIVAL_SHIFT) // 1000, rate.TIMESTAMP_TO_MS)
        self.estimator = QuickOveruseEstimator()
        self.detector = rate.OveruseDetector()
        self.rate_control = rate.AimdRateControl()
        self.last_update_ms: int | None = None
        self.ssrcs: dict[int, int] = {}


def use_quick_rate_estimation() -> None:
    """aiortc's receivers made from now on in this process build :class:`QuickRemoteBitrateEstimator`
    (the same REMBs). Idempotent."""
    aiortc.rtcrtpreceiver.RemoteBitrateEstimator = QuickRemoteBitrateEstimator  # type: ignore[misc]


def _digest(obj: object) -> str:
    return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]  # type: ignore[arg-type]


def aiortc_sources() -> dict[str, str]:
    """A digest of the source of each aiortc piece the classes above copy or replace (the test pins
    them: an upgrade that changes one fails loudly)."""
    return {
        "RateCounter": _digest(rate.RateCounter),
        "OveruseEstimator.update_min_frame_period": _digest(rate.OveruseEstimator.update_min_frame_period),
        "RemoteBitrateEstimator.__init__": _digest(rate.RemoteBitrateEstimator.__init__),
        "RTCRtpReceiver.__init__": _digest(aiortc.rtcrtpreceiver.RTCRtpReceiver.__init__),
    }
