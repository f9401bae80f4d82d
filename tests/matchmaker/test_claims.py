"""The batch claim on real Redis: one call, each pair re-checked on its own, stale pairs skipped."""

from __future__ import annotations

import asyncio
import json

from matchmaker.claims import Claimer, ClaimStatus
from matchmaker.store import RedisTicketStore, now_us
from matchmaker.ticket import Ticket, parse_ticket
from switchboard import keyspace, redis_client
from switchboard.ids import UserId
from switchboard.redis_client import open_redis


def ticket(uid: str) -> Ticket:
    return parse_ticket(UserId(uid), False, {"country": "FR", "age": 30})[0]


async def feed_gone(redis) -> list[str]:  # type: ignore[no-untyped-def]
    entries = await redis.xrange(keyspace.MATCH_FEED)
    return [u.decode() for _, f in entries if f[b"op"] == b"gone" for u in f[b"users"].split()]


async def test_batch_claims_good_pairs_and_skips_each_stale_one(redis) -> None:  # type: ignore[no-untyped-def]
    store = RedisTicketStore(redis, 60)
    users = ["ok1", "ok2", "left", "x1", "x2", "live", "y1", "blk1", "blk2", "re1", "re2", "ok3", "ok4", "z1"]
    for uid in users:
        await store.join(UserId(uid), False, {"country": "FR", "age": 30})
    await store.leave(UserId("left"))  # gone before the claim
    await redis.delete(keyspace.match_ticket("x2"))  # expired: the queue entry is still there
    await redis.set(keyspace.match_pair("live"), "ses_other")  # still in a live pair
    await redis.sadd(keyspace.blocks("blk2"), "blk1")
    await redis.zadd(keyspace.match_recent("re1"), {"re2": now_us() - 1_000_000})
    before = len(await feed_gone(redis))
    t = {uid: ticket(uid) for uid in users}
    batch = [Claimer.propose(t[a], t[b]) for a, b in [
        ("ok1", "ok2"), ("left", "x1"), ("x1", "x2"), ("y1", "live"), ("blk1", "blk2"), ("re1", "re2"),
        ("ok3", "ok4"), ("ok1", "z1"),  # ok1 was consumed earlier in this very batch
    ]]
    statuses = await Claimer(redis, 3600, 600).claim(batch, now_us())
    assert statuses == [ClaimStatus.OK, ClaimStatus.GONE_A, ClaimStatus.GONE_B, ClaimStatus.BUSY_B,
                        ClaimStatus.BLOCKED, ClaimStatus.REMATCH, ClaimStatus.OK, ClaimStatus.GONE_A]
    paired = [(f[b"a"], f[b"b"]) for _, f in await redis.xrange(keyspace.EVENTS_STREAM)]
    assert paired == [(b"ok1", b"ok2"), (b"ok3", b"ok4")]
    queued = {m.decode() for m in await redis.zrange(keyspace.MATCH_QUEUE, 0, -1)}
    assert queued == {"x1", "live", "y1", "blk1", "blk2", "re1", "re2", "z1"}
    for uid in queued:  # refused pairs leave both tickets as they were
        assert await redis.exists(keyspace.match_ticket(uid))
    assert await redis.get(keyspace.match_pair("ok3")) == batch[6].session_id.encode()
    assert await redis.get(keyspace.match_pair("y1")) is None
    # One feed entry names everyone the batch took out of the queue (the expired x2 included).
    assert sorted((await feed_gone(redis))[before:]) == ["ok1", "ok2", "ok3", "ok4", "x2"]


async def test_found_messages_carry_the_public_face_only(redis, redis_url) -> None:  # type: ignore[no-untyped-def]
    store = RedisTicketStore(redis, 60)
    a, _ = parse_ticket(UserId("a"), True, {"country": "FR", "age": 30, "lat": 48.8, "lon": 2.3,
                                            "filters": {"max_km": 100}, "profile": {"name": "Ann \"A\""}})
    b = ticket("b")
    await store.join(UserId("a"), True, {"country": "FR", "age": 30, "lat": 48.8, "lon": 2.3})
    await store.join(UserId("b"), False, {"country": "FR", "age": 30})
    client = open_redis(redis_url)
    await redis_client.ready(client)
    listener = client.pubsub()
    await listener.subscribe(keyspace.user_channel("b"))
    assert await Claimer(redis, 3600, 600).claim([Claimer.propose(a, b)], now_us()) == [ClaimStatus.OK]
    async with asyncio.timeout(5):
        while (msg := await listener.get_message(ignore_subscribe_messages=True, timeout=5)) is None:
            pass
    found = json.loads(msg["data"])
    assert found["peer"] == {"user_id": "a", "country": "FR", "tags": [], "profile": {"name": "Ann \"A\""}}
    assert found["offerer"] is False and found["type"] == "match.found"
    await listener.aclose()
    await client.aclose()


async def test_recent_peers_older_than_the_window_are_trimmed(redis) -> None:  # type: ignore[no-untyped-def]
    store = RedisTicketStore(redis, 60)
    old = now_us() - 7200 * 1_000_000
    await redis.zadd(keyspace.match_recent("a"), {f"old{i}": old for i in range(40)})
    for uid in ("a", "b"):
        await store.join(UserId(uid), False, {"country": "FR", "age": 30})
    statuses = await Claimer(redis, 3600, 600).claim([Claimer.propose(ticket("a"), ticket("b"))], now_us())
    assert statuses == [ClaimStatus.OK]
    assert await redis.zrange(keyspace.match_recent("a"), 0, -1) == [b"b"]
    assert await redis.zrange(keyspace.match_recent("b"), 0, -1) == [b"a"]
    assert 0 < await redis.pttl(keyspace.match_recent("a")) <= 3600 * 1000
