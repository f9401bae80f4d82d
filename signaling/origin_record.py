"""A live show's origin record (``keyspace.show_origin``): the node its broadcaster publishes on.

The node where the broadcaster creates the show claims the record (:meth:`OriginRecords.claim`), taking
it over from the node named before when there was one: the broadcaster moved (its node was drained,
or it reconnected elsewhere) and the show goes on. The origin refreshes the record while the show
lives; a refresh never takes it back from a node that claimed it since (``lua/origin_refresh.lua``,
one key: Redis Cluster-safe) but answers with that node's record, and the old origin hands the show
over (:meth:`signaling.cascade.Cascade.opened`, ``show.moved``). Edges read the record to pull the
show (:meth:`OriginRecords.read`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as aioredis

from switchboard import keyspace
from switchboard.ids import NodeId, RoomId

REFRESH_LUA = (Path(__file__).resolve().parent / "lua" / "origin_refresh.lua").read_text()


@dataclass(frozen=True)
class Origin:
    """A live show's origin record, as an edge reads it."""

    node: NodeId
    """The origin node (where the publisher is)."""
    owner: str
    """The show's owner (its broadcaster)."""
    show_id: str = ""
    started_ms: int = 0
    paid: bool = False

    @classmethod
    def parse(cls, raw: bytes | str) -> Origin:
        d = json.loads(raw)
        return cls(NodeId(str(d["node"])), str(d["owner"]), str(d.get("show_id", "")), int(d.get("started_ms", 0)),
                   bool(d.get("paid", False)))

    def encode(self) -> str:
        return json.dumps({"node": self.node, "owner": self.owner, "show_id": self.show_id,
                           "started_ms": self.started_ms, "paid": self.paid})


def parsed(raw: bytes | str | None) -> Origin | None:
    """The record, or None when there is none or it does not parse."""
    if raw is None:
        return None
    try:
        return Origin.parse(raw)
    except (ValueError, KeyError, TypeError):
        return None


class OriginRecords:
    """The origin records as one node reads and writes them."""

    def __init__(self, redis: aioredis.Redis, node_id: NodeId) -> None:
        self._redis = redis
        self._node_id = node_id
        self._refresh = redis.register_script(REFRESH_LUA)

    async def read(self, room: RoomId) -> Origin | None:
        return parsed(await self._redis.get(keyspace.show_origin(room)))

    async def claim(self, room: RoomId, origin: Origin) -> Origin | None:
        """Writes ``origin`` (this node's); returns the record it replaced when that named another node."""
        raw = await self._redis.set(keyspace.show_origin(room), origin.encode(), ex=keyspace.SHOW_ORIGIN_TTL_S,
                                    get=True)
        before = parsed(raw) if isinstance(raw, (bytes, str)) else None
        return before if before is not None and before.node != self._node_id else None

    async def refresh(self, room: RoomId, origin: Origin) -> Origin | None:
        """Writes ``origin`` again unless another node claimed the record since: then that node's record."""
        taken = await self._refresh(keys=[keyspace.show_origin(room)],
                                    args=[origin.encode(), self._node_id, keyspace.SHOW_ORIGIN_TTL_S])
        return parsed(taken) if taken else None

    async def withdraw(self, room: RoomId) -> None:
        """Deletes the record when it still names this node (the show ended here)."""
        record = await self.read(room)
        if record is not None and record.node == self._node_id:
            await self._redis.delete(keyspace.show_origin(room))
