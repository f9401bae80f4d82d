"""The pairing loop of one matchmaker process: read the queue, score, claim atomically, repeat.

Each round brings the local mirror of the queue up to date from the feed (only what changed),
serves the oldest ``window`` tickets of its shard, and claims the chosen pairs in one Lua call.
In :meth:`Pairer.run` the claim of one round runs in Redis while the next round is scored.
Several processes shard the heads by ``crc32(user_id) % processes`` (ranks from a heartbeat set),
so they rarely propose the same ticket; when they do, the claim script refuses one of them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import numpy as np
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from matchmaker.claims import Claimer, ClaimStatus, Proposal
from matchmaker.metrics import MatchmakerMetrics
from matchmaker.mirror import QueueMirror
from matchmaker.pool import Pool
from matchmaker.scoring import Expansion, plan_round
from matchmaker.store import now_us
from switchboard import keyspace
from switchboard.ids import new_id
from switchboard.settings import MatchmakerSettings

log = logging.getLogger("switchboard.matchmaker")
CLAIM_BATCH = 256
INLINE_CELLS = 100_000
"""Rounds of at most this many head x candidate cells are scored on the loop, bigger ones in a thread."""
HEARTBEAT_MS = 500
MEMBER_TIMEOUT_MS = 3000
REFUSAL_MEMORY_S = {ClaimStatus.BLOCKED: 60.0}
"""How long a refused pair is not proposed again (rematches: the rematch window)."""
BENCH_S = 5.0
"""A user found still in a live pair is left out of every round (as head or partner) this long."""
PARK_S = 0.5
"""A ticket nobody in the pool fits is not served again for this long, or until its soft preferences
widen if that comes sooner (others may still pick it meanwhile)."""


@dataclass(frozen=True)
class Planned:
    """A round's proposals, ready to claim."""

    proposals: list[Proposal]
    widened: tuple[int, ...]
    enqueued_us: np.ndarray
    """``len(proposals) x 2``: when each side was queued (for the wait histogram)."""


@dataclass
class RoundResult:
    """What one round did (tests and the loop's pacing read it)."""

    proposed: int = 0
    paired: list[Proposal] = field(default_factory=list)
    refused: dict[str, int] = field(default_factory=dict)


class Pairer:
    def __init__(self, redis: aioredis.Redis, settings: MatchmakerSettings,
                 metrics: MatchmakerMetrics | None = None, process_id: str | None = None) -> None:
        self._redis = redis
        self._settings = settings
        self._metrics = metrics or MatchmakerMetrics()
        self._claimer = Claimer(redis, settings.rematch_window_s, settings.session_ttl_s)
        self._expansion = Expansion(settings.expand_after_ms, settings.soft_age_gap_years, settings.soft_distance_km)
        self._pool = Pool()
        self._mirror = QueueMirror(redis, self._pool, settings.pool_size, self._metrics)
        self._refused: dict[str, dict[str, float]] = {}
        self._parked: dict[str, float] = {}
        self._benched: dict[str, float] = {}
        self._flying: set[str] = set()
        """Users of the claim in flight: left out of the round scored meanwhile."""
        self.process_id = process_id or new_id("mm_")
        self.rank, self.processes = 0, 1
        self._beat_at = 0.0

    async def _heartbeat(self) -> None:
        now_ms = time.time() * 1000
        if now_ms - self._beat_at < HEARTBEAT_MS:
            return
        self._beat_at = now_ms
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(keyspace.MATCH_SCORERS, {self.process_id: now_ms})
            pipe.zremrangebyscore(keyspace.MATCH_SCORERS, "-inf", now_ms - MEMBER_TIMEOUT_MS)
            pipe.zrange(keyspace.MATCH_SCORERS, 0, -1)
            *_, members = await pipe.execute()
        ids = sorted(m.decode() for m in members)
        self.processes = max(1, len(ids))
        self.rank = ids.index(self.process_id) if self.process_id in ids else 0

    async def stop(self) -> None:
        """Leaves the heartbeat set so the other processes take over this shard at once."""
        await self._redis.zrem(keyspace.MATCH_SCORERS, self.process_id)

    def _oldest(self, rows: np.ndarray, k: int) -> np.ndarray:
        enq = self._pool.cols.enq_us
        if len(rows) > k:
            rows = rows[np.argpartition(enq[rows], k)[:k]]
        return rows[np.argsort(enq[rows], kind="stable")]

    def _rows(self, now_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Heads (oldest of the shard, parked ones aside), near candidates, everyone."""
        everyone = self._pool.live_rows_all()
        for uid, until in list(self._benched.items()):
            if until < now_s or uid not in self._pool:
                del self._benched[uid]
        aside = [self._pool.rows[u] for u in (*self._benched, *self._flying) if u in self._pool]
        if aside:
            mask = np.zeros(len(self._pool.cols.live), bool)
            mask[aside] = True
            everyone = everyone[~mask[everyone]]
        mine = everyone
        if self.processes > 1:
            mine = everyone[self._pool.cols.shard[everyone] % self.processes == self.rank]
        near = self._oldest(mine, self._settings.candidates)
        for uid, until in list(self._parked.items()):
            if until < now_s or uid not in self._pool:
                del self._parked[uid]
        if self._parked:
            mask = np.zeros(len(self._pool.cols.live), bool)
            mask[[self._pool.rows[u] for u in self._parked]] = True
            mine = mine[~mask[mine]]
        return self._oldest(mine, self._settings.window), near, everyone

    def _unpark_at(self, row: int, now: int) -> float:
        """A lonely head waits ``PARK_S``, or less when its soft preferences widen sooner."""
        enqueued = float(self._pool.cols.enq_us[row])
        waited_ms = (now - enqueued) / 1000.0
        later = [ms for ms in self._expansion.after_ms if ms > waited_ms]
        until = now / 1e6 + PARK_S
        return min(until, (enqueued / 1000.0 + later[0]) / 1000.0) if later else until

    def _excluded(self, heads: np.ndarray, now_s: float) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for row in heads:
            uid = self._pool.user(int(row))
            memory = self._refused.get(uid)
            if not memory:
                continue
            for peer, until in list(memory.items()):
                if until < now_s:
                    del memory[peer]
                elif peer in self._pool:
                    out.setdefault(int(row), []).append(self._pool.rows[peer])
        return out

    def _remember(self, a: str, b: str, status: ClaimStatus) -> None:
        seconds = REFUSAL_MEMORY_S.get(status, float(self._settings.rematch_window_s))
        until = time.time() + seconds
        self._refused.setdefault(a, {})[b] = until
        self._refused.setdefault(b, {})[a] = until

    async def _plan(self) -> Planned:
        """Refresh the mirror, score, choose pairs. Users of a claim still in flight are left out."""
        await self._heartbeat()
        await self._mirror.refresh()
        now = now_us()
        heads, near, everyone = self._rows(now / 1e6)
        if len(heads) == 0:
            return Planned([], (), np.zeros(0))
        excluded = self._excluded(heads, now / 1e6)
        args = (self._pool.cols, heads, float(now), self._expansion, near, everyone, excluded)
        # Big rounds score in a thread (numpy lets go of the GIL; the loop meanwhile claims the
        # previous round); small ones are quicker than the hand-over.
        big = len(heads) * len(everyone) > INLINE_CELLS
        plan = await asyncio.to_thread(plan_round, *args) if big else plan_round(*args)
        for row in plan.lonely:
            self._parked[self._pool.user(row)] = self._unpark_at(row, now)
        tickets = self._pool.tickets
        proposals = []
        for head, row in plan.pairs:
            a, b = tickets[head], tickets[row]
            assert a is not None and b is not None
            proposals.append(Claimer.propose(a, b))
            self._flying.update((a.user_id, b.user_id))
        rows = np.array(plan.pairs, np.int64).reshape(-1, 2)
        return Planned(proposals, plan.widened, self._pool.cols.enq_us[rows])

    async def _claim(self, planned: Planned) -> RoundResult:
        result = RoundResult(proposed=len(planned.proposals))
        try:
            claim_at = now_us()
            for start in range(0, len(planned.proposals), CLAIM_BATCH):
                batch = planned.proposals[start : start + CLAIM_BATCH]
                statuses = await self._claimer.claim(batch, claim_at)
                for k, (p, status) in enumerate(zip(batch, statuses, strict=True), start):
                    self._settle(p, status, planned.widened[k], claim_at - planned.enqueued_us[k], result)
        finally:
            for p in planned.proposals:
                self._flying.discard(p.a.user_id)
                self._flying.discard(p.b.user_id)
        return result

    async def run_round(self) -> RoundResult:
        """One whole round, its claim included (the loop in :meth:`run` overlaps them instead)."""
        started = time.perf_counter()
        result = await self._claim(await self._plan())
        self._metrics.round.observe(time.perf_counter() - started)
        return result

    def _settle(self, p: Proposal, status: ClaimStatus, widened: int, waited_us: np.ndarray,
                result: RoundResult) -> None:
        a, b = p.a.user_id, p.b.user_id
        if status is ClaimStatus.OK:
            for ticket, waited in zip((p.a, p.b), waited_us.tolist(), strict=True):
                self._metrics.wait.observe(max(0.0, waited / 1e6))
                self._pool.discard(ticket)
                self._refused.pop(ticket.user_id, None)
            self._metrics.pairs.inc()
            if widened:
                self._metrics.widened.labels(str(widened)).inc()
            result.paired.append(p)
            return
        result.refused[status.value] = result.refused.get(status.value, 0) + 1
        self._metrics.lost.labels(status.value).inc()
        if status is ClaimStatus.GONE_A:
            self._pool.discard(p.a)
        elif status is ClaimStatus.GONE_B:
            self._pool.discard(p.b)
        elif status in (ClaimStatus.BUSY_A, ClaimStatus.BUSY_B):
            self._benched[a if status is ClaimStatus.BUSY_A else b] = time.time() + BENCH_S
        else:
            self._remember(a, b, status)

    async def run(self) -> None:
        """Rounds until cancelled; a Redis outage pauses it, never ends it. The claim of one round
        runs (in Redis) while the next round is scored (here): its users are left out of that one."""
        me = asyncio.current_task()
        claiming: asyncio.Task[RoundResult] | None = None
        try:
            while True:
                started = time.perf_counter()
                try:
                    planned = await self._plan()
                    paired = False
                    if claiming is not None:
                        paired = bool((await claiming).paired)
                        claiming = None
                    if planned.proposals:
                        claiming = asyncio.create_task(self._claim(planned), name="matchmaker-claim")
                    # redis-py can swallow a CancelledError that lands inside a command; a cancel
                    # requested meanwhile must still end the loop (else close() waits forever).
                    if me is not None and me.cancelling():
                        raise asyncio.CancelledError
                except RedisError as exc:
                    await _settled(claiming)
                    claiming = None
                    self._mirror.invalidate()
                    log.warning("matchmaker round failed: %s", exc)
                    await asyncio.sleep(1.0)
                    continue
                self._metrics.round.observe(time.perf_counter() - started)
                if claiming is None and not paired:
                    await self._mirror.wait(self._settings.idle_ms)
        finally:
            if claiming is not None:
                claiming.cancel()
                await _settled(claiming)
            try:
                await asyncio.shield(self.stop())
            except (RedisError, asyncio.CancelledError):
                pass


async def _settled(task: asyncio.Task[RoundResult] | None) -> None:
    """Waits for a claim task to end, whatever its outcome (Redis errors are the caller's to log)."""
    if task is not None:
        await asyncio.gather(task, return_exceptions=True)
