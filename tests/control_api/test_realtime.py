"""Realtime pushes (control_api/realtime.py) on one Redis and on a real Redis Cluster: the pushes of one
loop pass reach their users' channels, and each push's count says whether the user is online, even
when (on a cluster) the node holding the user subscribed through another cluster node than the one
that took the PUBLISH."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from control_api.realtime import Realtime
from switchboard.keyspace import presence, user_channel
from switchboard.redis_client import is_cluster, ready
from tests.control_api.conftest import ON_CLUSTER_TOO


async def _subscribed(redis: Any, *channels: str, away_from: str) -> Any:
    """A pub/sub like a node's: on a cluster, connected to a cluster node other than the one that owns
    ``away_from`` (a node subscribes all its users through one connection)."""
    if is_cluster(redis):
        await ready(redis)
        owner = redis.get_node_from_key(away_from)
        pubsub = redis.pubsub(node=next(n for n in redis.get_primaries() if n.name != owner.name))
    else:
        pubsub = redis.pubsub()
    await pubsub.subscribe(*channels)
    confirmed = 0
    async with asyncio.timeout(10):
        while confirmed < len(channels):
            message = await pubsub.get_message(timeout=1.0)
            confirmed += message is not None and message["type"] == "subscribe"
    return pubsub


@ON_CLUSTER_TOO
async def test_one_loop_pass_of_pushes_reaches_each_user_and_counts_who_is_online(redis: Any) -> None:
    online, offline = str(uuid.uuid4()), str(uuid.uuid4())
    pubsub = await _subscribed(redis, user_channel(online), away_from=user_channel(online))
    await redis.set(presence(online), "node_x")  # what the node holding its socket writes
    realtime = Realtime(redis)
    try:
        # Asked in one loop pass: sent together (a pipeline; side by side on a cluster).
        pushes = [realtime.send(uuid.UUID(user), {"type": "note", "n": n})
                  for n, user in enumerate([online, offline, online])]
        assert await asyncio.gather(*pushes) == [1, 0, 1]
        got = []
        async with asyncio.timeout(10):
            while len(got) < 2:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None:
                    got.append(json.loads(message["data"])["n"])
        assert sorted(got) == [0, 2]
        assert await realtime.push(uuid.UUID(online), {"type": "note", "n": 3}) == 1  # alone: one PUBLISH
        assert await realtime.push(uuid.UUID(offline), {"type": "note", "n": 4}) == 0
    finally:
        await pubsub.aclose()
