"""Redis: how a process opens it (one server or a Redis Cluster, by the URL's scheme), and the few
calls whose form differs on a cluster: loading the slot map before a SUBSCRIBE, writes that belong
together, reads of many keys that may sit in several slots (:func:`mget` splits them by slot); and
a reply as text (:func:`text`).

Every key and channel name is in :mod:`switchboard.keyspace`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.driver_info import DriverInfo

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
"""URL schemes that name a Redis Cluster (one seed node), and the plain scheme each stands for."""


def open_redis(url: str, *, max_connections: int | None = None) -> aioredis.Redis:
    """A pooled asyncio client (hiredis parser when installed). Close it with ``await r.aclose()``
    (that closes its pool too). With ``max_connections``, callers beyond it wait for a free
    connection (up to 30 s) instead of failing with "Too many connections"."""
    options: dict[str, Any] = {
        "health_check_interval": 30,
        "socket_keepalive": True,
        # lib_version given: redis-py otherwise reads package metadata from disk on every new connection.
        "driver_info": DriverInfo(name="redis-py", lib_version=redis.__version__),
    }
    scheme, sep, rest = url.partition("://")
    if sep and scheme in CLUSTER_SCHEMES:
        # A cluster client answers the same commands (it routes each by its key's slot); typed as the
        # plain client so callers need not care. Its pool is per node and does not block when full.
        cluster = RedisCluster.from_url(f"{CLUSTER_SCHEMES[scheme]}://{rest}",
                                        max_connections=max_connections or 2**31, **options)
        return cast(aioredis.Redis, cluster)
    if max_connections is None:
        return aioredis.Redis.from_url(url, **options)
    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=30, **options)
    return aioredis.Redis.from_pool(pool)


def text(value: object) -> str:
    """A Redis reply as text: the clients here do not decode (bytes), a few values arrive as str."""
    return value.decode() if isinstance(value, bytes) else str(value)


def is_cluster(client: object) -> bool:
    """True for a client that :func:`open_redis` made for a ``redis+cluster://`` URL."""
    return isinstance(client, RedisCluster)


async def ready(client: aioredis.Redis) -> None:
    """Loads a cluster client's slot map (no-op on a single Redis, and once loaded). A cluster pub/sub
    picks its node from that map, so call this before the first SUBSCRIBE."""
    if is_cluster(client):
        await cast(RedisCluster, client).initialize()


def atomic_pipeline(client: aioredis.Redis) -> Any:
    """A pipeline for writes that belong together: MULTI/EXEC on a single Redis. On a cluster, a plain
    pipeline (redis-py's asyncio cluster runs each command of a MULTI in a thread of its own, blocking
    the loop, and refuses keys of several slots): keys that share one hash tag reach one node, in
    order; keys of several slots (a pair of users' ``friends`` sets) are each written, without MULTI's
    all-or-nothing (the callers say what repairs a half-written pair)."""
    return client.pipeline(transaction=not is_cluster(client))


async def mget(client: aioredis.Redis, keys: Sequence[str]) -> list[Any]:
    """MGET of keys that may sit in different slots: one MGET on a single Redis, one per slot on a
    cluster (redis-py's ``mget_nonatomic``); values in the order of ``keys``."""
    if not keys:
        return []
    if is_cluster(client):
        return list(await cast(RedisCluster, client).mget_nonatomic(list(keys)))
    return list(await client.mget(list(keys)))
