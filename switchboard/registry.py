"""The node registry: every live node's entry in Redis, written by the node's heartbeat.

A node writes its :class:`NodeEntry` (JSON) under :func:`switchboard.keyspace.node_entry` with a TTL
of a few heartbeats, and its id in the index :data:`switchboard.keyspace.NODES` scored by the time the
entry expires. A node that stops cleanly deletes both; a node killed with -9 disappears when its
entry's TTL runs out (``node.registry_ttl_s``, 3 s by default). Readers (``switchboard nodes``, the
control API's placement) list the index, read the entries and prune ids whose entry is gone.
All keys carry the ``{nodes}`` hash tag: one slot on a Redis Cluster.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import redis.asyncio as aioredis

from switchboard import keyspace, redis_client


@dataclass(frozen=True)
class NodeEntry:
    """One node as it announces itself."""

    id: str
    """The node id (``node_...``), as in presence keys and ``hello``."""
    url: str
    """Where clients open the node's signaling socket: the base URL (``http://host:port``); ``/ws`` is added."""
    media_address: str
    """The address the node's SFU announces in its ICE candidates (empty: its listen addresses)."""
    pipe_address: str = ""
    """Where other nodes send this node's pipes (``cascade.pipe_address``; empty: ``media_address``)."""
    viewer_cap: int = 0
    """Sessions it takes before placement sends a show's further viewers elsewhere (0: no cap)."""
    region: str = ""
    """The region the node serves (``node.region``); placement prefers nodes of the client's region."""
    workers: int = 1
    """SFU worker processes."""
    cpu: float = 0.0
    """CPU in use by the node and its workers, as a fraction of the machine's cores (0..1)."""
    viewers: int = 0
    """Open signaling sessions on the node."""
    rooms: int = 0
    """Live shows on the node."""
    draining: bool = False
    """The node takes no new rooms and is moving its clients away (``switchboard node drain``)."""
    started_ms: int = 0
    """When the node started (unix ms)."""
    updated_ms: int = 0
    """When this entry was written (unix ms)."""
    suspect_ms: int = field(default=0, compare=False)
    """Not written by the node: the ``updated_ms`` of its entry that enough users reported lost
    (``keyspace.node_suspect``), as the registry read it; 0 if none."""

    @property
    def suspected(self) -> bool:
        """Reported lost against this very heartbeat (placement skips it until a newer one)."""
        return self.suspect_ms != 0 and self.suspect_ms == self.updated_ms

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("a node entry needs an id")
        if not 0 <= self.cpu <= 1.5:
            raise ValueError(f"cpu must be a fraction of the cores, got {self.cpu}")

    @property
    def pipe_host(self) -> str:
        """The address other nodes' pipes send to."""
        return self.pipe_address or self.media_address or "127.0.0.1"

    @property
    def full(self) -> bool:
        return 0 < self.viewer_cap <= self.viewers

    def to_json(self) -> str:
        data = asdict(self)
        del data["suspect_ms"]
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: bytes | str) -> NodeEntry:
        data: dict[str, Any] = json.loads(raw)
        known = {f.name for f in fields(cls)} - {"suspect_ms"}
        return cls(**{k: v for k, v in data.items() if k in known})


PRUNE_LUA = """
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then redis.call('ZREM', KEYS[1], ARGV[i - 1]) end
end
return 0
"""
"""KEYS: the index, then the entries of ``ARGV``'s ids (one ``{nodes}`` slot): each id whose entry is gone leaves."""


class NodeRegistry:
    """The registry in Redis: writes for one node, reads of all of them."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis

    async def announce(self, entry: NodeEntry, ttl_s: float) -> None:
        """Writes ``entry`` to live ``ttl_s`` seconds (the heartbeat rewrites it before then)."""
        ttl_ms = max(1, int(ttl_s * 1000))
        async with redis_client.atomic_pipeline(self._redis) as pipe:
            pipe.set(keyspace.node_entry(entry.id), entry.to_json(), px=ttl_ms)
            pipe.zadd(keyspace.NODES, {entry.id: time.time() * 1000 + ttl_ms})
            await pipe.execute()

    async def withdraw(self, node_id: str) -> None:
        """Removes the node at once (a clean stop). Safe to call twice."""
        async with redis_client.atomic_pipeline(self._redis) as pipe:
            pipe.delete(keyspace.node_entry(node_id))
            pipe.zrem(keyspace.NODES, node_id)
            await pipe.execute()

    async def nodes(self) -> list[NodeEntry]:
        """Every live node, by id. Ids whose entry expired (a killed node) are pruned from the index.

        Live means the entry's key is there (its TTL runs on the Redis server's clock), never an index
        score compared with this reader's clock: a reader whose clock ran ahead would prune healthy nodes
        (and the call lease would end their calls with ``node_lost``)."""
        return (await self.nodes_and_get(()))[0]

    async def nodes_and_get(self, keys: Sequence[str]) -> tuple[list[NodeEntry], list[Any]]:
        """:meth:`nodes`, and the values of ``keys`` (GET each) read in the same first round trip: a
        caller that needs both pays one write and one read (a second only when nodes are registered)."""
        async with self._redis.pipeline(transaction=False) as pipe:  # the control API's lean client (resp.py) too
            pipe.zrange(keyspace.NODES, 0, -1)
            for key in keys:
                pipe.get(key)
            members, *values = await pipe.execute()
        return await self._entries(members), values

    async def _entries(self, members: list[Any]) -> list[NodeEntry]:
        ids = [m.decode() if isinstance(m, bytes) else str(m) for m in members]
        if not ids:
            return []
        # The suspect markers in the same MGET (one {nodes} slot): every API process sees the same.
        both = await self._redis.mget([keyspace.node_entry(i) for i in ids] + [keyspace.node_suspect(i) for i in ids])
        raws, suspects = both[:len(ids)], both[len(ids):]
        gone = [i for i, raw in zip(ids, raws, strict=True) if raw is None]
        if gone:  # each removed only if its entry is still gone (not announced again meanwhile)
            await self._redis.execute_command("EVAL", PRUNE_LUA, 1 + len(gone), keyspace.NODES,
                                              *(keyspace.node_entry(i) for i in gone), *gone)
        out = []
        for raw, suspect in zip(raws, suspects, strict=True):
            if raw is None:
                continue
            try:
                entry = NodeEntry.from_json(raw)
                out.append(replace(entry, suspect_ms=int(suspect)) if suspect is not None else entry)
            except (ValueError, TypeError):  # a foreign or older entry: not a node we can place on
                continue
        return sorted(out, key=lambda e: e.id)

    async def get(self, node_id: str) -> NodeEntry | None:
        raw = await self._redis.get(keyspace.node_entry(node_id))
        return NodeEntry.from_json(raw) if raw is not None else None
