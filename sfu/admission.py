"""Admission: joins are paced so they can never starve the transports a worker already serves.

A join (a subscriber's offer, then its ICE checks and DTLS handshake) costs the worker's one loop
several milliseconds of CPU in pieces; hundreds at once kept the loop so busy that established
transports' packets (and the STUN consent checks among them) queued for seconds in their sockets:
a publisher whose consent checks go unanswered for 30 s closes its connection and the show dies.

:class:`Admission` lets a bounded number of joins be in flight (from the offer until the transport
connects, fails or times out), and admits the next one only while the loop keeps its timers within
``lag_limit_s`` (:class:`LoopLag`). Joins beyond the bounded queue, or waiting longer than
``wait_s``, are refused at once with :class:`sfu.errors.Busy` (the client may try again).

A slot is held from the offer until the transport connects, and most of that time the worker has
nothing to do for the join: the offer travels to the client, which answers, then ICE and DTLS take a
few milliseconds of the worker's CPU (py-spy over a burst of 98 joins on one worker: ~12 ms of CPU a
join, against a slot held ~0.25 s; docs/scaling.md). So a worker whose loop is idle (its timers
within ``idle_lag_s`` of time) lets up to ``burst_in_flight`` joins in flight, and only
``in_flight`` once its loop runs later than that.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable

from sfu.errors import Busy

IN_FLIGHT = 6
"""Joins a worker negotiates at once (offer sent, not yet connected)."""
BURST_IN_FLIGHT = 16
"""Joins a worker negotiates at once while its loop is idle (:data:`IDLE_LAG_S`); the worker passes it
(an :class:`Admission` made without it has :data:`IN_FLIGHT` slots only)."""
IDLE_LAG_S = 0.02
"""The loop counts as idle while it runs its timers at most this late (the worst of the last 0.5 s)."""
QUEUE = 512
"""Joins that may wait for a slot; more are refused at once."""
WAIT_S = 10.0
"""Longest a join waits for a slot before it is refused (well under the pool's 30 s call timeout)."""
LAG_LIMIT_S = 0.1
"""A join is admitted only while the loop runs its timers at most this late."""
HOLD_S = 15.0
"""A slot is given back this long after admission even if the transport never connects."""


class LoopLag:
    """How late the running loop fires a timer, sampled every ``period_s``; :attr:`recent` is the worst
    of the last ``window`` samples (the forwarding work between two samples shows up as lateness)."""

    def __init__(self, period_s: float = 0.05, window: int = 10) -> None:
        self.period_s = period_s
        self.samples: collections.deque[float] = collections.deque([0.0], maxlen=window)
        self.worst = 0.0
        self.on_sample: Callable[[], None] | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def recent(self) -> float:
        return max(self.samples)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._probe())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _probe(self) -> None:
        while True:
            due = time.monotonic() + self.period_s
            await asyncio.sleep(self.period_s)
            late = max(0.0, time.monotonic() - due)
            self.samples.append(late)
            self.worst = max(self.worst, late)
            if self.on_sample is not None:
                self.on_sample()


class Ticket:
    """One admitted join's slot; :meth:`release` (idempotent) gives it back."""

    def __init__(self, admission: Admission) -> None:
        self._admission = admission
        self._released = False
        self._timer = asyncio.get_running_loop().call_later(admission.hold_s, self.release)

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        self._timer.cancel()
        self._admission._give_back()


class Admission:
    """``ticket = await admission.enter()`` before a join's work; release it when the join is done.

    Waiting joins form one FIFO queue; the head is admitted when a slot frees or the loop lag falls
    (the lag probe's sample), so a long queue costs nothing while it waits.
    """

    def __init__(self, lag: LoopLag, *, in_flight: int = IN_FLIGHT, queue: int = QUEUE, wait_s: float = WAIT_S,
                 lag_limit_s: float = LAG_LIMIT_S, hold_s: float = HOLD_S, burst_in_flight: int = 0,
                 idle_lag_s: float = IDLE_LAG_S) -> None:
        self.lag = lag
        self.in_flight = in_flight
        self.burst_in_flight = burst_in_flight
        self.idle_lag_s = idle_lag_s
        self.queue = queue
        self.wait_s = wait_s
        self.lag_limit_s = lag_limit_s
        self.hold_s = hold_s
        self.active = 0
        self.admitted = 0
        self.refused = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        lag.on_sample = self._pump

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def _can_enter(self) -> bool:
        late = self.lag.recent
        if late > self.lag_limit_s:
            return False
        return self.active < self.in_flight or (self.active < self.burst_in_flight and late <= self.idle_lag_s)

    def _give_back(self) -> None:
        self.active -= 1
        self._pump()

    def _pump(self) -> None:
        while self._waiters and self._can_enter():
            fut = self._waiters.popleft()
            if not fut.done():
                self.active += 1  # taken for the waiter now, so no later arrival can overtake it
                fut.set_result(None)

    async def enter(self) -> Ticket:
        """A slot for one join; raises :class:`Busy` at once when the queue is full, or after ``wait_s``."""
        if not self._waiters and self._can_enter():
            self.active += 1
        else:
            if len(self._waiters) >= self.queue:
                self.refused += 1
                raise Busy(f"{len(self._waiters)} joins are waiting on this worker")
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await asyncio.wait_for(asyncio.shield(fut), self.wait_s)
            except (TimeoutError, asyncio.CancelledError) as exc:
                if fut.done() and not fut.cancelled():
                    self._give_back()  # admitted just as we gave up
                else:
                    fut.cancel()
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(fut)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                self.refused += 1
                raise Busy(f"no join slot within {self.wait_s:g} s") from None
        self.admitted += 1
        return Ticket(self)
