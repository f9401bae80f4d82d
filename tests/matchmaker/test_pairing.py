"""Pairing on real Redis: blocks, the rematch window, premium gating, and the atomic claim under
concurrency (1,000 users, 4 matchmakers: every user in at most one live pair)."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import numpy as np

from matchmaker.claims import Claimer, ClaimStatus
from matchmaker.pairer import Pairer
from matchmaker.pool import Pool
from matchmaker.scoring import compatible
from matchmaker.store import RedisTicketStore, now_us
from matchmaker.ticket import parse_ticket
from switchboard import keyspace
from switchboard.ids import UserId
from switchboard.redis_client import open_redis
from switchboard.settings import MatchmakerSettings
from switchboard.tasks import stop_tasks

SETTINGS = MatchmakerSettings(expand_after_ms=(0,), soft_age_gap_years=(0,), soft_distance_km=(0,))


async def pairs_in_stream(redis) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    entries = await redis.xrange(keyspace.EVENTS_STREAM)
    return [(f[b"a"].decode(), f[b"b"].decode()) for _, f in entries if f[b"type"] == b"match.paired"]


async def test_blocked_users_are_never_paired_either_way(redis) -> None:  # type: ignore[no-untyped-def]
    store = RedisTicketStore(redis, 60)
    for uid in ("a", "b"):
        await store.join(UserId(uid), False, {"country": "FR", "age": 30})
    await redis.sadd(keyspace.blocks("b"), "a")  # b blocked a: a must not get b either
    pairer = Pairer(redis, SETTINGS, process_id="solo")
    first = await pairer.run_round()
    assert first.paired == [] and first.refused == {"blocked": 1}
    assert (await pairer.run_round()).proposed == 0  # remembered, not proposed again
    await store.join(UserId("c"), False, {"country": "FR", "age": 30})
    paired = (await pairer.run_round()).paired
    assert len(paired) == 1 and {paired[0].a.user_id, paired[0].b.user_id} in ({"a", "c"}, {"b", "c"})


async def test_no_rematch_within_window_then_allowed_after(redis) -> None:  # type: ignore[no-untyped-def]
    store = RedisTicketStore(redis, 60)
    for uid in ("a", "b"):
        await store.join(UserId(uid), False, {"country": "FR", "age": 30})
    assert len((await Pairer(redis, SETTINGS, process_id="solo").run_round()).paired) == 1
    await store.next(UserId("a"))
    await store.next(UserId("b"))
    result = await Pairer(redis, SETTINGS, process_id="solo").run_round()
    assert result.paired == [] and result.refused == {"rematch": 1}
    # Age the recorded pairing past the window (instead of waiting an hour).
    old = now_us() - SETTINGS.rematch_window_s * 1_000_000 - 1
    await redis.zadd(keyspace.match_recent("a"), {"b": old})
    await redis.zadd(keyspace.match_recent("b"), {"a": old})
    assert len((await Pairer(redis, SETTINGS, process_id="solo").run_round()).paired) == 1


async def test_premium_filters_apply_and_free_ones_are_ignored(redis) -> None:  # type: ignore[no-untyped-def]
    store = RedisTicketStore(redis, 60)
    await store.join(UserId("premium"), True, {"country": "FR", "age": 30, "filters": {"age_min": 40}})
    await store.join(UserId("young"), False, {"country": "FR", "age": 25})
    pairer = Pairer(redis, SETTINGS, process_id="solo")
    assert (await pairer.run_round()).proposed == 0
    joined = await store.join(UserId("free"), False, {"country": "FR", "age": 25, "filters": {"age_min": 60}})
    assert joined.ignored_filters == ("age_min",)
    paired = (await pairer.run_round()).paired
    assert [{p.a.user_id, p.b.user_id} for p in paired] == [{"young", "free"}]
    await store.join(UserId("older"), False, {"country": "FR", "age": 45})
    paired = (await pairer.run_round()).paired
    assert [{p.a.user_id, p.b.user_id} for p in paired] == [{"premium", "older"}]


async def test_claim_script_under_concurrent_overlapping_claims(redis, redis_url) -> None:  # type: ignore[no-untyped-def]
    """4 claimers race over random, overlapping pairs of the same 1,000 users."""
    users = [f"u{i}" for i in range(1000)]
    tickets = {u: parse_ticket(UserId(u), False, {"country": "FR", "age": 30})[0] for u in users}
    async with redis.pipeline(transaction=False) as pipe:
        for u in users:
            pipe.set(keyspace.match_ticket(u), tickets[u].to_json(), px=60_000)
            pipe.zadd(keyspace.MATCH_QUEUE, {u: now_us()})
        await pipe.execute()
    clients = [open_redis(redis_url) for _ in range(4)]
    for client in clients:
        await client.ping()

    async def racer(client, seed: int) -> None:  # type: ignore[no-untyped-def]
        rng = random.Random(seed)
        claimer = Claimer(client, 3600, 600)
        for _ in range(20):
            order = rng.sample(users, len(users))
            batch = [Claimer.propose(tickets[order[i]], tickets[order[i + 1]]) for i in range(0, 100, 2)]
            statuses = await claimer.claim(batch, now_us())
            assert set(statuses) <= set(ClaimStatus)

    async with asyncio.timeout(60):
        await asyncio.gather(*(racer(c, s) for s, c in enumerate(clients)))
    for client in clients:
        await client.aclose()
    pairs = await pairs_in_stream(redis)
    counts = Counter(u for pair in pairs for u in pair)
    assert pairs and max(counts.values()) == 1
    for a, b in pairs:
        assert await redis.get(keyspace.match_pair(a)) == await redis.get(keyspace.match_pair(b))


async def test_four_matchmakers_pair_1000_users_each_at_most_once(redis, redis_url) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(7)
    store = RedisTicketStore(redis, 300)
    for i in range(1000):
        premium = rng.random() < 0.2
        filters = {"countries": [rng.choice(["FR", "DE"])]} if rng.random() < 0.3 else {}
        if premium:
            filters |= {"age_min": 18, "age_max": rng.randint(30, 60)}
        await store.join(UserId(f"u{i}"), premium, {"country": rng.choice(["FR", "DE", "US"]),
                                                    "age": rng.randint(18, 60), "filters": filters})
    clients = [open_redis(redis_url) for _ in range(4)]
    for client in clients:
        await client.ping()
    pairers = [Pairer(c, SETTINGS, process_id=f"mm{i}") for i, c in enumerate(clients)]

    async def work(pairer: Pairer) -> None:
        idle = 0
        while idle < 3:
            result = await pairer.run_round()
            idle = 0 if result.proposed else idle + 1
            await asyncio.sleep(0)

    async with asyncio.timeout(90):
        await asyncio.gather(*(work(p) for p in pairers))
    for pairer, client in zip(pairers, clients, strict=True):
        await pairer.stop()
        await client.aclose()
    pairs = await pairs_in_stream(redis)
    counts = Counter(u for pair in pairs for u in pair)
    assert len(pairs) > 300
    assert max(counts.values()) == 1, "a user was placed in two pairs"
    live = {u for u in counts if await redis.exists(keyspace.match_pair(u))}
    assert live == set(counts)
    assert await redis.zcard(keyspace.MATCH_QUEUE) == 1000 - 2 * len(pairs)


async def test_four_pipelined_loops_pair_each_user_at_most_once(redis, redis_url) -> None:  # type: ignore[no-untyped-def]
    """The production loop (``Pairer.run``: the claim of one round overlaps the scoring of the
    next), four of them, tickets still arriving: nobody twice, and nobody left who had a partner."""
    rng = random.Random(11)
    store = RedisTicketStore(redis, 300)
    payloads = {}

    async def join(i: int) -> None:
        premium = rng.random() < 0.2
        filters = {"countries": [rng.choice(["FR", "DE"])]} if rng.random() < 0.3 else {}
        if premium:
            filters |= {"age_min": 18, "age_max": rng.randint(25, 60)}
        payload = {"country": rng.choice(["FR", "DE", "US"]), "age": rng.randint(18, 60), "filters": filters}
        payloads[f"u{i}"] = parse_ticket(UserId(f"u{i}"), premium, payload)[0]
        await store.join(UserId(f"u{i}"), premium, payload)

    for i in range(800):
        await join(i)
    clients = [open_redis(redis_url) for _ in range(4)]
    for client in clients:
        await client.ping()
    tasks = [asyncio.create_task(Pairer(c, SETTINGS, process_id=f"mm{i}").run()) for i, c in enumerate(clients)]
    for i in range(800, 1000):  # arrivals while the loops run
        await join(i)
    async with asyncio.timeout(60):
        last, calm = (-1, -1), 0
        while calm < 4:  # until neither the queue nor the pairs moved for a while (> PARK_S)
            await asyncio.sleep(0.25)
            now = (await redis.zcard(keyspace.MATCH_QUEUE), await redis.xlen(keyspace.EVENTS_STREAM))
            calm = calm + 1 if now == last else 0
            last = now
    await stop_tasks(tasks)
    for client in clients:
        await client.aclose()
    pairs = await pairs_in_stream(redis)
    counts = Counter(u for pair in pairs for u in pair)
    assert max(counts.values()) == 1, "a user was placed in two pairs"
    for a, b in pairs:
        assert await redis.get(keyspace.match_pair(a)) == await redis.get(keyspace.match_pair(b))
    left = sorted(m.decode() for m in await redis.zrange(keyspace.MATCH_QUEUE, 0, -1))
    assert len(left) == 1000 - 2 * len(pairs)
    pool = Pool()
    rows = np.array([pool.add(payloads[u], 0.0) for u in left], np.int64)
    if len(rows):  # whoever is left has nobody left to pair with (hard filters, checked both ways)
        assert not compatible(pool.cols.take(rows), pool.cols.take(rows), rows, rows).any()
