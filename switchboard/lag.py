"""How far behind the event loop runs: the overload signal both planes shed on.

A saturated process does not see its backlog as a queue it owns: requests wait in kernel buffers
and in the loop's ready list before any handler runs. The loop's lateness measures that wait. A timer
is armed every ``interval_s``; when it fires, how late it fired is the lag. Between firings,
:meth:`LoopLag.now` also counts how overdue the next firing already is, so a request parsed in the
middle of a long loop pass sees the pass's lag at once (uvloop's ``loop.time()`` stands still within
a pass, so the wall clock is read instead). Only lag seen twice in a row counts.
"""

from __future__ import annotations

import asyncio
import time


class LoopLag:
    """Samples the running loop's lateness; cheap enough to read on every request."""

    def __init__(self, interval_s: float = 0.02) -> None:
        self._interval_s = interval_s
        self._due = 0.0
        self._last_s = 0.0
        self._before_s = 0.0
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Starts sampling on the running loop (call from a coroutine)."""
        if self._handle is None:
            self._arm()

    def close(self) -> None:
        """Stops sampling. Safe to call twice."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def now(self) -> float:
        """Seconds the loop has been behind, sustained: the smaller of the last sample and the one
        before it (or the next timer's overdue time, if larger). One late pass (a descheduled
        process, a GC) does not count; a loop that stays behind does."""
        if self._handle is None:
            return 0.0
        return min(self._last_s, max(self._before_s, time.monotonic() - self._due))

    def _arm(self) -> None:
        self._due = time.monotonic() + self._interval_s
        self._handle = asyncio.get_running_loop().call_later(self._interval_s, self._fired)

    def _fired(self) -> None:
        self._before_s = self._last_s
        self._last_s = max(0.0, time.monotonic() - self._due)
        self._arm()
