"""The ticket store on real Redis: join/leave/next, TTL expiry, premium gating, match.ended.

Subscriptions use a client of their own: redis-py reads package metadata (a blocking stat) when it
opens a connection, so code under test must find its pool's connection free.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from matchmaker.errors import NotQueued, UnknownFilter
from matchmaker.pairer import Pairer
from matchmaker.store import RedisTicketStore
from matchmaker.types import NextOutcome, TicketStore
from switchboard import keyspace, redis_client
from switchboard.ids import UserId
from switchboard.redis_client import open_redis
from switchboard.settings import MatchmakerSettings

SETTINGS = MatchmakerSettings(expand_after_ms=(0,), soft_age_gap_years=(0,), soft_distance_km=(0,), ticket_ttl_s=60)


async def next_message(pubsub) -> dict:  # type: ignore[no-untyped-def,type-arg]
    async with asyncio.timeout(5):
        while True:
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
            if msg is not None:
                return json.loads(msg["data"])


async def test_join_writes_ticket_and_queue_with_ttl(redis) -> None:  # type: ignore[no-untyped-def]
    store: TicketStore = RedisTicketStore(redis, ticket_ttl_s=60)
    result = await store.join(UserId("a"), False, {"country": "FR", "age": 30, "filters": {"max_km": 10}})
    assert result.ignored_filters == ("max_km",)
    assert await redis.zscore(keyspace.MATCH_QUEUE, "a") == result.enqueued_us
    assert 0 < await redis.pttl(keyspace.match_ticket("a")) <= 60_000
    stored = json.loads(await redis.get(keyspace.match_ticket("a")))
    assert stored["filters"]["max_km"] is None and stored["country"] == "FR"


async def test_bad_input_never_makes_a_ticket(redis) -> None:  # type: ignore[no-untyped-def]
    store = RedisTicketStore(redis, ticket_ttl_s=60)
    with pytest.raises(UnknownFilter):
        await store.join(UserId("a"), True, {"country": "FR", "age": 30, "filters": {"mood": "happy"}})
    assert await redis.exists(keyspace.match_ticket("a"), keyspace.MATCH_QUEUE) == 0


async def test_leave_removes_and_is_safe_twice(redis) -> None:  # type: ignore[no-untyped-def]
    store = RedisTicketStore(redis, ticket_ttl_s=60)
    await store.join(UserId("a"), False, {"country": "FR", "age": 30})
    assert await store.leave(UserId("a")) is True
    assert await store.leave(UserId("a")) is False
    assert await redis.zcard(keyspace.MATCH_QUEUE) == 0


async def test_expired_ticket_is_swept_and_never_paired(redis) -> None:  # type: ignore[no-untyped-def]
    store = RedisTicketStore(redis, ticket_ttl_s=60)
    await store.join(UserId("old"), False, {"country": "FR", "age": 30})
    await redis.pexpire(keyspace.match_ticket("old"), 1)  # the TTL runs out (shortened, not waited for)
    async with asyncio.timeout(5):
        while await redis.exists(keyspace.match_ticket("old")):  # noqa: ASYNC110 - polling Redis, no event to wait on
            await asyncio.sleep(0.01)
    await store.join(UserId("new"), False, {"country": "FR", "age": 30})
    result = await Pairer(redis, SETTINGS, process_id="solo").run_round()
    assert result.paired == []
    assert await redis.zrange(keyspace.MATCH_QUEUE, 0, -1) == [b"new"]


async def test_pair_then_next_ends_pair_tells_peer_and_requeues(redis, redis_url) -> None:  # type: ignore[no-untyped-def]
    store = RedisTicketStore(redis, ticket_ttl_s=60)
    listener = open_redis(redis_url)
    await redis_client.ready(listener)
    pubsub = listener.pubsub()
    await pubsub.subscribe(keyspace.user_channel("a"), keyspace.user_channel("b"))
    await store.join(UserId("a"), False, {"country": "FR", "age": 30, "profile": {"name": "Ann"}})
    await store.join(UserId("b"), False, {"country": "DE", "age": 31, "profile": {"name": "Bob"}})
    result = await Pairer(redis, SETTINGS, process_id="solo").run_round()
    assert len(result.paired) == 1
    found = [await next_message(pubsub), await next_message(pubsub)]
    by_peer = {m["peer"]["user_id"]: m for m in found}
    assert set(by_peer) == {"a", "b"} and by_peer["a"]["session_id"] == by_peer["b"]["session_id"]
    assert by_peer["a"]["type"] == "match.found" and by_peer["b"]["peer"]["profile"] == {"name": "Bob"}
    assert by_peer["a"]["offerer"] != by_peer["b"]["offerer"]
    assert "lat" not in by_peer["a"]["peer"]
    sid = by_peer["a"]["session_id"]
    session = await redis.hgetall(keyspace.match_session(sid))
    assert {session[b"a"], session[b"b"]} == {b"a", b"b"} and int(session[b"at_us"]) > 0
    assert await redis.get(keyspace.match_pair("a")) == sid.encode()

    assert await store.next(UserId("a")) is NextOutcome.REQUEUED
    ended = await next_message(pubsub)
    assert ended == {"type": "match.ended", "session_id": sid, "reason": "next"}
    assert await redis.exists(keyspace.match_pair("a"), keyspace.match_pair("b")) == 0
    assert await redis.zrange(keyspace.MATCH_QUEUE, 0, -1) == [b"a"]
    assert json.loads(await redis.get(keyspace.match_ticket("a")))["profile"] == {"name": "Ann"}
    assert await store.next(UserId("a")) is NextOutcome.QUEUED
    assert await store.next(UserId("b")) is NextOutcome.REQUEUED  # the peer goes back with its own ticket
    with pytest.raises(NotQueued):
        await store.next(UserId("stranger"))
    await pubsub.aclose()
    await listener.aclose()


async def test_leave_during_pair_tells_peer(redis, redis_url) -> None:  # type: ignore[no-untyped-def]
    store = RedisTicketStore(redis, ticket_ttl_s=60)
    await store.join(UserId("a"), False, {"country": "FR", "age": 30})
    await store.join(UserId("b"), False, {"country": "FR", "age": 30})
    assert len((await Pairer(redis, SETTINGS, process_id="solo").run_round()).paired) == 1
    listener = open_redis(redis_url)
    await redis_client.ready(listener)
    pubsub = listener.pubsub()
    await pubsub.subscribe(keyspace.user_channel("b"))
    assert await store.leave(UserId("a")) is True
    assert (await next_message(pubsub))["reason"] == "leave"
    assert await redis.exists(keyspace.match_pair("b")) == 0
    await pubsub.aclose()
    await listener.aclose()
