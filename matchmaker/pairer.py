"""The pairing loop of one matchmaker process: read the queue, score, claim atomically, repeat.

Each round reads the oldest ``pool_size`` queue entries (fetching only tickets it has not seen),
serves the oldest ``window`` tickets of its shard, and claims the chosen pairs in one Lua call.
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
from matchmaker.pool import Pool
from matchmaker.scoring import Expansion, plan_round
from matchmaker.store import SOURCES, now_us
from matchmaker.ticket import Ticket
from switchboard import keyspace
from switchboard.ids import new_id
from switchboard.settings import MatchmakerSettings

log = logging.getLogger("switchboard.matchmaker")
CLAIM_BATCH = 256
HEARTBEAT_MS = 500
MEMBER_TIMEOUT_MS = 3000
REFUSAL_MEMORY_S = {ClaimStatus.BLOCKED: 60.0, ClaimStatus.BUSY: 5.0}
"""How long a refused pair is not proposed again (rematches: the rematch window)."""
FULL_SYNC_S = 1.0
"""Every this long a round re-reads the whole window of the queue (drops what left unnoticed)."""
LOOK_BACK_US = 2_000_000
"""Incremental reads start this far before the newest entry seen (writers' clocks differ a little)."""
PARK_S = 0.5
"""A ticket nobody in the pool fits is not served again for this long (others may still pick it)."""


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
        self._sweep = redis.register_script(SOURCES["sweep"])
        self._expansion = Expansion(settings.expand_after_ms, settings.soft_age_gap_years, settings.soft_distance_km)
        self._pool = Pool()
        self._refused: dict[str, dict[str, float]] = {}
        self._parked: dict[str, float] = {}
        self._synced_at = 0
        self._high = 0.0
        self.process_id = process_id or new_id("mm_")
        self.rank, self.processes = 0, 1
        self._beat_at = 0.0

    async def _heartbeat(self) -> None:
        now_ms = time.time() * 1000
        if now_ms - self._beat_at < HEARTBEAT_MS:
            return
        self._beat_at = now_ms
        async with self._redis.pipeline(transaction=True) as pipe:
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

    async def _refresh(self, now: int) -> None:
        """Brings the pool up to date: a full read of the oldest ``pool_size`` entries every
        ``FULL_SYNC_S``, and in between only the entries queued lately (with a look-back for
        clock skew between writers). Tickets that left in between are found by the claim."""
        full = now - self._synced_at > FULL_SYNC_S * 1_000_000
        async with self._redis.pipeline(transaction=False) as pipe:
            if full:
                pipe.zrange(keyspace.MATCH_QUEUE, 0, self._settings.pool_size - 1, withscores=True)
            else:
                pipe.zrangebyscore(keyspace.MATCH_QUEUE, self._high - LOOK_BACK_US, "+inf", withscores=True)
            pipe.zcard(keyspace.MATCH_QUEUE)
            entries, total = await pipe.execute()
        self._metrics.queue_length.set(total)
        seen: set[str] = set()
        missing: list[tuple[str, float]] = []
        expired_before = now - self._settings.ticket_ttl_s * 1_000_000
        suspects: list[str] = []
        for member, score in entries:
            uid = member.decode()
            if score < expired_before:
                suspects.append(uid)
                continue
            seen.add(uid)
            self._high = max(self._high, score)
            if uid not in self._pool or self._pool.enqueued_us(uid) != score:
                missing.append((uid, score))
        if full:
            self._synced_at = now
            for uid in [u for u in self._pool.rows if u not in seen]:
                self._pool.remove(uid)
        elif len(self._pool) + len(missing) > self._settings.pool_size:
            missing = missing[: max(0, self._settings.pool_size - len(self._pool))]
        if missing:
            raws = await self._redis.mget([keyspace.match_ticket(uid) for uid, _ in missing])
            for (uid, score), raw in zip(missing, raws, strict=True):
                if raw is None:
                    suspects.append(uid)
                else:
                    self._pool.add(Ticket.from_json(raw), score)
        if suspects:
            await self._sweep(keys=[keyspace.MATCH_QUEUE, *map(keyspace.match_ticket, suspects)], args=suspects)

    def _oldest(self, rows: np.ndarray, k: int) -> np.ndarray:
        enq = self._pool.cols.enq_us
        if len(rows) > k:
            rows = rows[np.argpartition(enq[rows], k)[:k]]
        return rows[np.argsort(enq[rows], kind="stable")]

    def _rows(self, now_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Heads (oldest of the shard, parked ones aside), near candidates, everyone."""
        everyone = self._pool.live_rows_all()
        mine = everyone
        if self.processes > 1:
            mine = everyone[self._pool.cols.shard[everyone] % self.processes == self.rank]
        near = self._oldest(mine, self._settings.candidates)
        for uid, until in list(self._parked.items()):
            if until < now_s or uid not in self._pool:
                del self._parked[uid]
        if self._parked:
            parked = np.array([self._pool.rows[u] for u in self._parked])
            mine = mine[~np.isin(mine, parked)]
        return self._oldest(mine, self._settings.window), near, everyone

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

    async def run_round(self) -> RoundResult:
        started = time.perf_counter()
        await self._heartbeat()
        now = now_us()
        await self._refresh(now)
        heads, near, everyone = self._rows(now / 1e6)
        result = RoundResult()
        if len(heads) == 0:
            return result
        excluded = self._excluded(heads, now / 1e6)
        plan = await asyncio.to_thread(plan_round, self._pool.cols, heads, float(now), self._expansion,
                                       near, everyone, excluded)
        for row in plan.lonely:
            self._parked[self._pool.user(row)] = now / 1e6 + PARK_S
        tickets = self._pool.tickets
        proposals = []
        for head, row in plan.pairs:
            a, b = tickets[head], tickets[row]
            assert a is not None and b is not None
            proposals.append(Claimer.propose(a, b))
        result.proposed = len(proposals)
        claim_at = now_us()
        for start in range(0, len(proposals), CLAIM_BATCH):
            batch = proposals[start : start + CLAIM_BATCH]
            statuses = await self._claimer.claim(batch, claim_at)
            for offset, (p, status) in enumerate(zip(batch, statuses, strict=True)):
                self._settle(p, status, plan.widened[start + offset], claim_at, result)
        self._metrics.round.observe(time.perf_counter() - started)
        return result

    def _settle(self, p: Proposal, status: ClaimStatus, widened: int, claim_at: int, result: RoundResult) -> None:
        a, b = p.a.user_id, p.b.user_id
        if status is ClaimStatus.OK:
            for uid in (a, b):
                self._metrics.wait.observe(max(0.0, (claim_at - self._pool.enqueued_us(uid)) / 1e6))
                self._pool.remove(uid)
                self._refused.pop(uid, None)
            self._metrics.pairs.inc()
            if widened:
                self._metrics.widened.labels(str(widened)).inc()
            result.paired.append(p)
            return
        result.refused[status.value] = result.refused.get(status.value, 0) + 1
        self._metrics.lost.labels(status.value).inc()
        if status is ClaimStatus.GONE_A:
            self._pool.remove(a)
        elif status is ClaimStatus.GONE_B:
            self._pool.remove(b)
        else:
            self._remember(a, b, status)

    async def run(self) -> None:
        """Rounds until cancelled; a Redis outage pauses it, never ends it."""
        me = asyncio.current_task()
        try:
            while True:
                try:
                    result = await self.run_round()
                    # redis-py can swallow a CancelledError that lands inside a command; a cancel
                    # requested meanwhile must still end the loop (else close() waits forever).
                    if me is not None and me.cancelling():
                        raise asyncio.CancelledError
                except RedisError as exc:
                    log.warning("matchmaker round failed: %s", exc)
                    await asyncio.sleep(1.0)
                    continue
                if not result.paired:
                    await asyncio.sleep(self._settings.idle_ms / 1000)
        finally:
            try:
                await asyncio.shield(self.stop())
            except (RedisError, asyncio.CancelledError):
                pass
