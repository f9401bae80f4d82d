"""A show over several nodes (the cascade, docs/scaling.md), people side: roster, count and chat.

Each node holding a show (its origin and its edges, the set ``keyspace.show_nodes``) writes its own
visible members in the show's member hash (``keyspace.show_members``: ``<node>/<session>`` -> user);
hidden taps are never written, so they stay invisible on every node. A change is published to the
other nodes' channels (``show.span`` commands); each reads the hash again and sends its own members
the new roster. A chat line goes to the local members at once and to the other nodes, which hand it
to theirs (blocks hold there too: each node keeps apart its members from a blocked sender). When the
origin ends the show, its edges end their copies with the same reason.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from signaling.hub import Hub
from switchboard import keyspace
from switchboard.ids import NodeId, RoomId, SessionId, UserId

log = logging.getLogger("switchboard.signaling")

KIND = "show.span"
"""The node-channel command carrying a show's roster changes, chat lines and end to its other nodes."""

Handler = Callable[[dict[str, Any]], Awaitable[None]]


class ShowSpan:
    """The shared part of the shows this node holds with other nodes."""

    def __init__(self, redis: aioredis.Redis, hub: Hub, node_id: NodeId) -> None:
        self._redis = redis
        self._hub = hub
        self.node_id = node_id
        self._rooms: set[RoomId] = set()
        self.on_event: Handler | None = None
        """The show book's handler of another node's ``show.span`` (``roster``, ``chat``, ``ended``)."""
        hub.on_command(self._command, kinds=(KIND,))

    async def close(self) -> None:
        """Node stop: this node's members leave every spanned show's hash and node set. Safe twice."""
        for room in list(self._rooms):
            await self.leave(room)

    def _field(self, session: SessionId) -> str:
        return f"{self.node_id}/{session}"

    async def enter(self, room: RoomId) -> None:
        """This node holds ``room`` (origin or edge) from now on."""
        self._rooms.add(room)
        await self._redis.sadd(keyspace.show_nodes(room), self.node_id)

    async def leave(self, room: RoomId, last: bool = False) -> None:
        """This node no longer holds ``room``; ``last`` (the origin ended it): the shared keys go."""
        self._rooms.discard(room)
        try:
            if last:
                await self._redis.delete(keyspace.show_nodes(room), keyspace.show_members(room))
                return
            await self._redis.srem(keyspace.show_nodes(room), self.node_id)
            fields = [f for f in await self._redis.hkeys(keyspace.show_members(room))
                      if _text(f).startswith(f"{self.node_id}/")]
            if fields:
                await self._redis.hdel(keyspace.show_members(room), *fields)
        except aioredis.RedisError as exc:
            log.warning("show span keys not cleaned", extra={"room": room, "error": str(exc)})

    async def joined(self, room: RoomId, session: SessionId, user: UserId) -> None:
        await self._redis.hset(keyspace.show_members(room), self._field(session), user)
        await self.publish(room, {"what": "roster"})

    async def left(self, room: RoomId, session: SessionId) -> None:
        await self._redis.hdel(keyspace.show_members(room), self._field(session))
        await self.publish(room, {"what": "roster"})

    async def remote_users(self, room: RoomId) -> list[UserId]:
        """The visible members' users on the other nodes (in no particular order, each once)."""
        members = await self._redis.hgetall(keyspace.show_members(room))
        mine = f"{self.node_id}/"
        return list(dict.fromkeys(sorted(UserId(_text(u)) for f, u in members.items()
                                         if not _text(f).startswith(mine))))

    async def publish(self, room: RoomId, event: dict[str, Any]) -> None:
        """Sends ``event`` to the other nodes holding ``room``."""
        if room not in self._rooms:
            return
        nodes = [_text(n) for n in await self._redis.smembers(keyspace.show_nodes(room))]
        for node in nodes:
            if node != self.node_id:
                await self._hub.command(node, {"kind": KIND, "room": room, **event})

    async def _command(self, message: dict[str, Any]) -> None:
        if self.on_event is not None and RoomId(str(message.get("room"))) in self._rooms:
            await self.on_event(message)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
