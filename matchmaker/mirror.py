"""The local mirror of the queue: a :class:`Pool` kept up to date from ``mm:feed``, so a round reads
only what changed since the last one (new tickets, removed users), never the whole queue.

A resync (start-up, a feed gap, a Redis error, every ``RESYNC_S``, or when the pool has room again
after it overflowed) reads the oldest ``pool_size`` queue entries and the feed position in one
MULTI, so no change falls between the two. Tickets that expire by TTL leave no feed entry: the
claim finds them gone (and removes them), and the next resync sweeps the queue of them.
"""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis

from matchmaker.metrics import MatchmakerMetrics
from matchmaker.pool import Pool
from matchmaker.store import FEED_MAXLEN, SOURCES
from matchmaker.ticket import Ticket
from switchboard import keyspace

FEED_BATCH = 20_000
"""Feed entries read per round at most (the rest next round)."""
RESYNC_S = 30.0
"""A safety net: re-read the queue this often even when the feed looked complete."""
COALESCE_S = 0.003
"""After an idle wait ends on news, this much more before the round, so news comes in batches."""
START = b"0-0"


def stream_id(raw: bytes) -> tuple[int, int]:
    ms, _, seq = raw.partition(b"-")
    return int(ms), int(seq or 0)


class QueueMirror:
    """Feeds ``pool`` from Redis. ``refresh`` once per round; ``invalidate`` after a Redis error."""

    def __init__(self, redis: aioredis.Redis, pool: Pool, pool_size: int, metrics: MatchmakerMetrics,
                 feed_maxlen: int = FEED_MAXLEN) -> None:
        self._redis = redis
        self._feed_maxlen = feed_maxlen
        self._pool = pool
        self._pool_size = pool_size
        self._metrics = metrics
        self._sweep = redis.register_script(SOURCES["sweep"])
        self._last: bytes | None = None
        """Id of the last feed entry applied; None: the next refresh resyncs."""
        self._resynced_at = 0.0
        self._overflow = False
        """The queue held more than the pool takes: resync when there is room again."""
        self.resyncs = 0

    def invalidate(self) -> None:
        self._last = None

    async def wait(self, timeout_ms: int) -> None:
        """Returns as soon as the feed has an entry not applied yet, or after ``timeout_ms``: an
        idle matchmaker wakes for a new ticket at once instead of polling."""
        if self._last is None or timeout_ms <= 0:
            await asyncio.sleep(max(0, timeout_ms) / 1000)
            return
        if await self._redis.xread({keyspace.MATCH_FEED: self._last}, count=1, block=timeout_ms):
            # Let a burst land before the round (every process wakes for every entry, claims included).
            await asyncio.sleep(COALESCE_S)

    async def refresh(self) -> None:
        if (self._last is None or time.monotonic() - self._resynced_at > RESYNC_S
                or (self._overflow and len(self._pool) < self._pool_size // 2)):
            await self._resync()
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xlen(keyspace.MATCH_FEED)
            pipe.xrange(keyspace.MATCH_FEED, "-", "+", count=1)
            pipe.xrange(keyspace.MATCH_FEED, b"(" + self._last, "+", count=FEED_BATCH)
            pipe.zcard(keyspace.MATCH_QUEUE)
            length, first, entries, total = await pipe.execute()
        self._metrics.queue_length.set(total)
        # Trimming (MAXLEN ~) only ever leaves the stream at least FEED_MAXLEN long; so a stream
        # that long whose first entry is past ours may have lost entries we never read.
        if length >= self._feed_maxlen and first and stream_id(first[0][0]) > stream_id(self._last):
            await self._resync()
            return
        if entries:
            self._last = entries[-1][0]
            await self._apply(entries)

    async def _apply(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        joins: dict[str, float] = {}
        for _, fields in entries:
            if fields.get(b"op") == b"join":
                uid = fields[b"user"].decode()
                joins[uid] = float(fields[b"at"])
            else:
                for raw in fields.get(b"users", b"").split():
                    uid = raw.decode()
                    joins.pop(uid, None)
                    self._pool.remove(uid)
        pool = self._pool
        wanted = [(u, at) for u, at in joins.items() if u not in pool or pool.enqueued_us(u) != at]
        room = self._pool_size - len(pool)
        newcomers = [w for w in wanted if w[0] not in pool]
        if len(newcomers) > room:  # the newest wait outside the pool until it has room again
            self._overflow = True
            wanted = [w for w in wanted if w[0] in pool] + newcomers[: max(0, room)]
        await self._sweep_gone(await self._fetch(wanted))

    async def _fetch(self, wanted: list[tuple[str, float]]) -> list[str]:
        """Adds the tickets of ``wanted`` (user, enqueued us); returns the users whose ticket is gone."""
        if not wanted:
            return []
        raws = await self._redis.mget([keyspace.match_ticket(uid) for uid, _ in wanted])
        gone = []
        for (uid, at), raw in zip(wanted, raws, strict=True):
            if raw is None:
                gone.append(uid)
                self._pool.remove(uid)
            else:
                self._pool.add(Ticket.from_json(raw), at)
        return gone

    async def _resync(self) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xrevrange(keyspace.MATCH_FEED, "+", "-", count=1)
            pipe.zrange(keyspace.MATCH_QUEUE, 0, self._pool_size - 1, withscores=True)
            pipe.zcard(keyspace.MATCH_QUEUE)
            newest, entries, total = await pipe.execute()
        self._last = newest[0][0] if newest else START
        self._resynced_at = time.monotonic()
        self._overflow = total > self._pool_size
        self._metrics.queue_length.set(total)
        self.resyncs += 1
        queued = [(m.decode(), float(score)) for m, score in entries]
        present = {u for u, _ in queued}
        for uid in [u for u in self._pool.rows if u not in present]:
            self._pool.remove(uid)
        wanted = [(u, at) for u, at in queued if u not in self._pool or self._pool.enqueued_us(u) != at]
        await self._sweep_gone(await self._fetch(wanted))

    async def _sweep_gone(self, users: list[str]) -> None:
        """Drops queue entries whose ticket is gone (expired); the script re-checks each atomically."""
        if users:
            await self._sweep(keys=[keyspace.MATCH_QUEUE, keyspace.MATCH_FEED, *map(keyspace.match_ticket, users)],
                              args=[FEED_MAXLEN, *users])
