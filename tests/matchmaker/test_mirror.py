"""The local mirror of the queue on real Redis: it follows the feed (joins, leaves, claims of other
processes) without re-reading the queue, and re-reads it when the feed lost entries."""

from __future__ import annotations

from matchmaker.claims import Claimer, ClaimStatus
from matchmaker.metrics import MatchmakerMetrics
from matchmaker.mirror import QueueMirror
from matchmaker.pool import Pool
from matchmaker.store import RedisTicketStore, now_us
from matchmaker.ticket import parse_ticket
from switchboard import keyspace
from switchboard.ids import UserId


def mirror_of(redis, pool_size: int = 100, feed_maxlen: int | None = None) -> tuple[QueueMirror, Pool]:  # type: ignore[no-untyped-def]
    pool = Pool()
    kwargs = {} if feed_maxlen is None else {"feed_maxlen": feed_maxlen}
    return QueueMirror(redis, pool, pool_size, MatchmakerMetrics(), **kwargs), pool


async def queue_of(redis) -> set[str]:  # type: ignore[no-untyped-def]
    return {m.decode() for m in await redis.zrange(keyspace.MATCH_QUEUE, 0, -1)}


async def test_follows_joins_leaves_and_claims_incrementally(redis) -> None:  # type: ignore[no-untyped-def]
    store = RedisTicketStore(redis, 60)
    for uid in ("a", "b", "c"):
        await store.join(UserId(uid), False, {"country": "FR", "age": 30})
    mirror, pool = mirror_of(redis)
    await mirror.refresh()
    assert set(pool.rows) == {"a", "b", "c"} and mirror.resyncs == 1
    await store.join(UserId("d"), False, {"country": "DE", "age": 40})
    await store.join(UserId("a"), False, {"country": "FR", "age": 31})  # a re-join replaces the ticket
    await store.leave(UserId("b"))
    tickets = {u: parse_ticket(UserId(u), False, {"country": "FR", "age": 30})[0] for u in ("c", "d")}
    claimed = await Claimer(redis, 3600, 600).claim([Claimer.propose(tickets["c"], tickets["d"])], now_us())
    assert claimed == [ClaimStatus.OK]  # as if another matchmaker process made this pair
    await mirror.refresh()
    assert set(pool.rows) == {"a"} == await queue_of(redis)
    assert pool.tickets[pool.rows["a"]].age == 31
    assert pool.enqueued_us("a") == await redis.zscore(keyspace.MATCH_QUEUE, "a")
    assert mirror.resyncs == 1  # all of it from the feed


async def test_resyncs_when_the_feed_lost_entries(redis) -> None:  # type: ignore[no-untyped-def]
    store = RedisTicketStore(redis, 60)
    await store.join(UserId("first"), False, {"country": "FR", "age": 30})
    mirror, pool = mirror_of(redis, feed_maxlen=5)
    await mirror.refresh()
    for i in range(20):
        await store.join(UserId(f"u{i}"), False, {"country": "FR", "age": 30})
    await store.leave(UserId("first"))
    await redis.xtrim(keyspace.MATCH_FEED, maxlen=5, approximate=False)  # trimmed past what we read
    await mirror.refresh()
    assert mirror.resyncs == 2
    assert set(pool.rows) == await queue_of(redis) and len(pool) == 20


async def test_a_full_pool_takes_the_oldest_and_the_rest_when_there_is_room(redis) -> None:  # type: ignore[no-untyped-def]
    store = RedisTicketStore(redis, 60)
    for i in range(6):
        await store.join(UserId(f"u{i}"), False, {"country": "FR", "age": 30})
    mirror, pool = mirror_of(redis, pool_size=4)
    await mirror.refresh()
    assert set(pool.rows) == {"u0", "u1", "u2", "u3"}
    await store.join(UserId("late"), False, {"country": "FR", "age": 30})
    await mirror.refresh()
    assert "late" not in pool.rows  # the newest wait outside the full pool
    for i in range(4):
        await store.leave(UserId(f"u{i}"))
    await mirror.refresh()  # the leaves empty the pool below half: it re-reads the queue
    await mirror.refresh()
    assert set(pool.rows) == {"u4", "u5", "late"}


async def test_expired_tickets_are_swept_on_resync(redis) -> None:  # type: ignore[no-untyped-def]
    store = RedisTicketStore(redis, 60)
    for uid in ("a", "b"):
        await store.join(UserId(uid), False, {"country": "FR", "age": 30})
    await redis.delete(keyspace.match_ticket("a"))  # what the TTL does: no feed entry
    mirror, pool = mirror_of(redis)
    await mirror.refresh()
    assert set(pool.rows) == {"b"} == await queue_of(redis)
    gone = [f for _, f in await redis.xrange(keyspace.MATCH_FEED) if f[b"op"] == b"gone"]
    assert gone[-1][b"users"] == b"a"
