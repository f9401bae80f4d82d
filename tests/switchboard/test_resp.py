"""switchboard.resp: the lean client answers its redis-py subset as redis-py does, against the real Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from switchboard.resp import Resp, open_hot_redis


async def test_answers_like_redis_py(redis: Any, redis_url: str) -> None:
    lean = Resp(redis_url)
    try:
        await redis.set("resp:a", "1")
        await redis.hset("resp:h", mapping={"x": "1", "y": "2"})
        await redis.zadd("resp:z", {"m1": 1, "m2": 2, "m3": 3})
        assert await lean.get("resp:a") == await redis.get("resp:a") == b"1"
        assert await lean.get("resp:missing") is None
        assert await lean.mget(["resp:a", "resp:missing"]) == await redis.mget(["resp:a", "resp:missing"])
        assert await lean.hgetall("resp:h") == await redis.hgetall("resp:h") == {b"x": b"1", b"y": b"2"}
        assert await lean.hgetall("resp:missing") == {}
        assert await lean.set("resp:b", "v", nx=True, ex=30) is True
        assert await lean.set("resp:b", "w", nx=True, ex=30) is None
        assert await redis.ttl("resp:b") > 0
        assert await lean.incrby("resp:n", 3) == 3
        assert await lean.expire("resp:n", 60) is True
        async with lean.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore("resp:z", "-inf", 1.5)
            pipe.zrange("resp:z", 0, -1)
            pipe.incr("resp:n")
            pipe.expire("resp:n", 60)
            pipe.get("resp:a")
            pipe.hgetall("resp:h")
            assert await pipe.execute() == [1, [b"m2", b"m3"], 4, True, b"1", {b"x": b"1", b"y": b"2"}]
        with pytest.raises(ResponseError):
            await lean.execute_command("HGETALL", "resp:a")  # wrong type
        async with lean.pipeline() as pipe:
            pipe.get("resp:a")
            pipe.hgetall("resp:a")
            with pytest.raises(ResponseError):
                await pipe.execute()
        # Commands of one loop pass go together, each answered in order.
        values = await asyncio.gather(*(lean.incrby("resp:m") for _ in range(200)))
        assert sorted(values) == list(range(1, 201)) and values == sorted(values)
    finally:
        await lean.aclose()
        await lean.aclose()


async def test_a_lost_connection_fails_what_is_in_flight_and_the_next_command_reconnects(redis: Any,
                                                                                          redis_url: str) -> None:
    lean = Resp(redis_url)
    try:
        await redis.set("resp:c", "1")
        assert await lean.get("resp:c") == b"1"
        name = b"resp-victim"
        await lean.execute_command("CLIENT", "SETNAME", name)
        blocked = asyncio.ensure_future(lean.execute_command("BLPOP", "resp:never", 30))
        await asyncio.sleep(0.05)
        clients = await redis.client_list()
        victim = next(c for c in clients if c.get("name") == name.decode())
        await redis.client_kill_filter(_id=victim["id"])
        with pytest.raises(RedisConnectionError):
            await blocked
        assert await lean.get("resp:c") == b"1"
    finally:
        await lean.aclose()


async def test_wrong_password_is_refused_and_a_cluster_url_keeps_redis_py(redis: Any, redis_url: str) -> None:
    bad = Resp(redis_url.replace("://:", "://:wrong", 1)) if "://:" in redis_url else None
    if bad is not None:
        with pytest.raises(ResponseError):
            await bad.get("resp:a")
        await bad.aclose()
    assert open_hot_redis("redis+cluster://127.0.0.1:7000", redis) is redis
    assert isinstance(open_hot_redis(redis_url, redis), Resp)
    with pytest.raises(ValueError):
        Resp(redis_url).pipeline(transaction=True)
