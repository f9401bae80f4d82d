"""Rate limits: a sliding window per client address and per user (free or premium tier) in Redis.

Two fixed one-minute counters approximate a sliding window (the previous window weighted by how
much of it still overlaps): one round trip, no Lua, and exact enough for abuse control.

The per-request check (:meth:`RateLimits.check`, on every request of the API) costs no round trip:
each process counts locally and adds its counts to Redis in one pipeline every ``flush_s``
(write-behind), reading back what every process counted. A process sees its own requests at once
and the others' within ``flush_s``; a Redis outage leaves the local limits in force.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from control_api.errors import RateLimited
from control_api.services import Caller
from switchboard.keyspace import premium_tier, rate_window
from switchboard.tasks import stop_task

WINDOW_S = 60
log = logging.getLogger("switchboard.api")


@dataclass(frozen=True)
class Verdict:
    """The outcome of counting one request."""

    allowed: bool
    """Under the limit (the request was counted either way)."""
    retry_after_s: int
    """When refused: seconds until the estimate falls below the limit."""
    previous: int = 0
    """The counter of the previous window (to judge the same request against another limit)."""
    current: int = 0
    """The counter of this window, this request included."""
    fraction: float = 0.0
    """How much of this window has passed."""

    def under(self, limit: int) -> Verdict:
        """The same counts judged against ``limit``."""
        if sliding_estimate(self.previous, self.current, self.fraction) <= limit:
            return Verdict(True, 0, self.previous, self.current, self.fraction)
        return Verdict(False, retry_after(self.previous, self.current, self.fraction, limit), self.previous,
                       self.current, self.fraction)


def sliding_estimate(previous: int, current: int, elapsed_fraction: float) -> float:
    """Requests in the last window: all of this window plus the overlapping share of the last one."""
    return previous * (1.0 - elapsed_fraction) + current


def retry_after(previous: int, current: int, elapsed_fraction: float, limit: int) -> int:
    """Seconds until ``sliding_estimate`` drops under ``limit`` (at least 1)."""
    if current >= limit:
        return max(1, math.ceil((1.0 - elapsed_fraction) * WINDOW_S))
    # previous * (1 - f') + current < limit  =>  f' > 1 - (limit - current) / previous
    needed = 1.0 - (limit - current) / previous if previous else 0.0
    return max(1, math.ceil((needed - elapsed_fraction) * WINDOW_S))


@dataclass
class _Count:
    """One counter's view in this process: Redis's figures at the last flush plus what is not yet sent."""

    window: int
    current: int = 0
    """This window's count in Redis at the last flush (every process's requests)."""
    previous: int = 0
    """The previous window's count in Redis."""
    pending: int = 0
    """Requests counted here since the last flush."""
    sending: int = 0
    """Requests of a flush under way."""


class RateLimits:
    """Counts every request against its address, and its user when signed in."""

    def __init__(self, redis: Redis, *, per_ip: int, per_user: int, per_premium: int, flush_s: float = 0.05) -> None:
        self._redis = redis
        self._per_ip = per_ip
        self._per_user = per_user
        self._per_premium = per_premium
        self._flush_s = flush_s
        self._counts: dict[tuple[str, str], _Count] = {}
        self._leftovers: list[tuple[str, str, int, int]] = []
        """Counts owed to a window that has ended: (scope, ident, window, count)."""
        self._flusher: asyncio.Task[None] | None = None

    async def hit(self, scope: str, ident: str, limit: int, now: float | None = None) -> Verdict:
        return (await self.hit_many([(scope, ident, limit)], now))[0]

    async def hit_many(self, counters: list[tuple[str, str, int]], now: float | None = None) -> list[Verdict]:
        """Counts one request on each ``(scope, ident, limit)``, all in one Redis round trip."""
        now = time.time() if now is None else now
        window = int(now // WINDOW_S)
        fraction = (now % WINDOW_S) / WINDOW_S
        async with self._redis.pipeline(transaction=False) as pipe:
            for scope, ident, _ in counters:
                current_key = rate_window(scope, ident, window)
                pipe.incr(current_key)
                pipe.expire(current_key, 2 * WINDOW_S)
                pipe.get(rate_window(scope, ident, window - 1))
            replies = await pipe.execute()
        verdicts = []
        for i, (_, _, limit) in enumerate(counters):
            current, previous = int(replies[3 * i]), int(replies[3 * i + 2] or 0)
            verdicts.append(Verdict(False, 0, previous, current, fraction).under(limit))
        return verdicts

    async def check(self, ip: str, caller: Caller | None) -> None:
        """Raises RateLimited when the address or the user is over its limit (counted here, sent
        to Redis by the next flush)."""
        counters = [("ip", ip, self._per_ip)]
        if caller is not None:
            limit = self._per_premium if caller.premium else self._per_user
            counters.append(("user", str(caller.user_id), limit))
        verdicts = [self._count_locally(scope, ident, limit) for scope, ident, limit in counters]
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later())
        if not verdicts[0].allowed:
            raise RateLimited(f"more than {self._per_ip} requests a minute from this address",
                              verdicts[0].retry_after_s)
        if caller is None:
            return
        user, limit = verdicts[1], counters[1][2]
        if user.allowed != user.under(self._per_premium if not caller.premium else self._per_user).allowed:
            # The tier decides this request: premium as it is now (payments writes the mark on every
            # change), not as the access token said when it was issued (up to its lifetime ago).
            mark = await self._redis.get(premium_tier(str(caller.user_id)))
            if mark is not None and (mark in (b"1", "1")) != caller.premium:
                limit = self._per_premium if mark in (b"1", "1") else self._per_user
                user = user.under(limit)
        if not user.allowed:
            raise RateLimited(f"more than {limit} requests a minute for this account", user.retry_after_s)

    def _count_locally(self, scope: str, ident: str, limit: int, now: float | None = None) -> Verdict:
        now = time.time() if now is None else now
        window = int(now // WINDOW_S)
        fraction = (now % WINDOW_S) / WINDOW_S
        count = self._counts.get((scope, ident))
        if count is None or count.window != window:
            previous = 0
            if count is not None:
                if count.pending:  # still owed to the old window's key
                    self._leftovers.append((scope, ident, count.window, count.pending))
                if count.window == window - 1:
                    previous = count.current + count.sending + count.pending
            count = self._counts[(scope, ident)] = _Count(window, previous=previous)
        count.pending += 1
        current = count.current + count.sending + count.pending
        return Verdict(False, 0, count.previous, current, fraction).under(limit)

    async def _flush_later(self) -> None:
        try:
            await asyncio.sleep(self._flush_s)
            await self.flush()
        finally:
            self._flusher = None

    async def flush(self) -> None:
        """Sends the counts made here since the last flush and reads back every process's."""
        window = int(time.time() // WINDOW_S)
        for key in [k for k, c in self._counts.items() if c.window < window - 1 and not c.pending]:
            del self._counts[key]  # idle for two windows: nothing left to know
        leftovers, self._leftovers = self._leftovers, []
        dirty = [(key, count) for key, count in self._counts.items() if count.pending]
        if not dirty and not leftovers:
            return
        for _, count in dirty:
            count.sending, count.pending = count.pending, 0
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for scope, ident, old_window, owed in leftovers:
                    pipe.incrby(rate_window(scope, ident, old_window), owed)
                    pipe.expire(rate_window(scope, ident, old_window), 2 * WINDOW_S)
                for (scope, ident), count in dirty:
                    current_key = rate_window(scope, ident, count.window)
                    pipe.incrby(current_key, count.sending)
                    pipe.expire(current_key, 2 * WINDOW_S)
                    pipe.get(rate_window(scope, ident, count.window - 1))
                replies = (await pipe.execute())[2 * len(leftovers):]
        except (RedisError, OSError):
            log.warning("rate limit counts not sent to Redis; local limits still apply", exc_info=True)
            self._leftovers = leftovers + self._leftovers
            for _, count in dirty:
                count.pending, count.sending = count.pending + count.sending, 0
            return
        for i, (_, count) in enumerate(dirty):
            count.sending = 0
            count.current = int(replies[3 * i])
            count.previous = max(count.previous, int(replies[3 * i + 2] or 0))

    async def close(self) -> None:
        """Sends what is still counted only here. Safe to call twice."""
        if self._flusher is not None:
            await stop_task(self._flusher)
            self._flusher = None
        await self.flush()
