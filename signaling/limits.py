"""Per-socket and per-user limits: pure counters over an injected clock, tested without I/O."""

from __future__ import annotations

from collections import deque


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; :meth:`take` spends one or says no."""

    __slots__ = ("_burst", "_last", "_rate", "_tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self._rate = rate
        self._burst = burst
        self._tokens = float(burst)
        self._last = now

    def take(self, now: float) -> bool:
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class AbuseMeter:
    """Counts error frames earned in a sliding window; :meth:`hit` is True once over ``limit``."""

    __slots__ = ("_hits", "_limit", "_window_s")

    def __init__(self, limit: int, window_s: float = 60.0) -> None:
        self._limit = limit
        self._window_s = window_s
        self._hits: deque[float] | None = None
        """Made on the first hit: most sockets never earn one, and an empty deque is 624 bytes."""

    def hit(self, now: float) -> bool:
        if self._hits is None:
            self._hits = deque()
        self._hits.append(now)
        while self._hits and self._hits[0] <= now - self._window_s:
            self._hits.popleft()
        return len(self._hits) > self._limit
