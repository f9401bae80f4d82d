"""A show over several nodes (the cascade, docs/scaling.md), people side: roster, count and chat.

Each node holding a show (its origin and its edges, the set ``keyspace.show_nodes``) writes its own
visible members in its own member hash of the show (``keyspace.show_members``: session -> user) and
refreshes its TTL every ``REFRESH_S``: a killed node's members expire with it. Hidden taps are never
written, so they stay invisible on every node. A change is published to the other nodes' channels
(``show.span`` commands); each reads the hashes again and sends its own members the new roster; the
refresh also reads them, so a dead node's members leave the rosters within a few seconds though it
told nobody. A chat line takes its id from the show's one counter (``keyspace.show_chat_seq``), goes
to the local members at once and to the other nodes, which hand it to theirs (blocks hold there too:
each node keeps apart its members from a blocked sender). Moderation acts and gifts travel the same
way. When the origin ends the show, its edges end their copies with the same reason.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from signaling.hub import Hub
from switchboard import keyspace
from switchboard.ids import NodeId, RoomId, SessionId, UserId
from switchboard.tasks import stop_task

log = logging.getLogger("switchboard.signaling")

KIND = "show.span"
"""The node-channel command carrying a show's roster changes, chat lines and end to its other nodes."""
REFRESH_S = 1.0
"""How often a node refreshes its member hashes' TTL and reads the other nodes' members again."""

Handler = Callable[[dict[str, Any]], Awaitable[None]]


class ShowSpan:
    """The shared part of the shows this node holds with other nodes."""

    def __init__(self, redis: aioredis.Redis, hub: Hub, node_id: NodeId, refresh_s: float = REFRESH_S) -> None:
        self._redis = redis
        self._hub = hub
        self.node_id = node_id
        self._refresh_s = refresh_s
        self._rooms: dict[RoomId, dict[SessionId, UserId]] = {}
        """The spanned shows held here -> this node's visible members in each."""
        self._seen: dict[RoomId, list[UserId]] = {}
        """The other nodes' members as last read (the refresh tells the book when they change)."""
        self.on_event: Handler | None = None
        """The show book's handler of another node's ``show.span`` (``roster``, ``chat``, ``ended``...)."""
        self._task: asyncio.Task[None] | None = None
        hub.on_command(self._command, kinds=(KIND,))

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._refresh(), name="show-span-refresh")

    async def close(self) -> None:
        """Node stop: this node's members leave every spanned show's hash and node set. Safe twice."""
        task, self._task = self._task, None
        if task is not None:
            await stop_task(task)
        for room in list(self._rooms):
            await self.leave(room)

    def holds(self, room: RoomId) -> bool:
        return room in self._rooms

    async def enter(self, room: RoomId) -> None:
        """This node holds ``room`` (origin or edge) from now on."""
        self._rooms.setdefault(room, {})
        await self._redis.sadd(keyspace.show_nodes(room), self.node_id)
        await self._redis.expire(keyspace.show_nodes(room), keyspace.SHOW_SHARED_TTL_S)

    async def leave(self, room: RoomId, last: bool = False) -> None:
        """This node no longer holds ``room``; ``last`` (the origin ended it): the shared keys go."""
        self._rooms.pop(room, None)
        self._seen.pop(room, None)
        try:
            await self._redis.delete(keyspace.show_members(room, self.node_id))
            if last:
                await self._redis.delete(keyspace.show_nodes(room), keyspace.show_chat_seq(room))
                await self._redis.delete(keyspace.show_moderation(room))
            else:
                await self._redis.srem(keyspace.show_nodes(room), self.node_id)
        except aioredis.RedisError as exc:
            log.warning("show span keys not cleaned", extra={"room": room, "error": str(exc)})

    async def joined(self, room: RoomId, session: SessionId, user: UserId) -> None:
        members = self._rooms.get(room)
        if members is None:
            return
        members[session] = user
        await self._write(room, {session: user})
        await self.publish(room, {"what": "roster"})

    async def left(self, room: RoomId, session: SessionId) -> None:
        members = self._rooms.get(room)
        if members is None or members.pop(session, None) is None:
            return
        await self._redis.hdel(keyspace.show_members(room, self.node_id), session)
        await self.publish(room, {"what": "roster"})

    async def _write(self, room: RoomId, members: dict[SessionId, UserId]) -> None:
        key = keyspace.show_members(room, self.node_id)
        await self._redis.hset(key, mapping={str(k): str(v) for k, v in members.items()})
        await self._redis.expire(key, keyspace.SHOW_MEMBERS_TTL_S)

    async def remote_users(self, room: RoomId) -> list[UserId]:
        """The visible members' users on the other nodes (sorted, each once)."""
        users: set[UserId] = set()
        for node in [_text(n) for n in await self._redis.smembers(keyspace.show_nodes(room))]:
            if node != self.node_id:
                users.update(UserId(_text(u)) for u in await self._redis.hvals(keyspace.show_members(room, node)))
        self._seen[room] = sorted(users)
        return self._seen[room]

    async def next_line_id(self, room: RoomId) -> int:
        """The id of the show's next chat line (one counter for all its nodes)."""
        return int(await self._redis.incr(keyspace.show_chat_seq(room)))

    async def save_moderation(self, room: RoomId, state: dict[str, Any]) -> None:
        await self._redis.set(keyspace.show_moderation(room), json.dumps(state), ex=keyspace.SHOW_SHARED_TTL_S)

    async def moderation(self, room: RoomId) -> dict[str, Any]:
        """The show's pin, mutes and kicks as the acting nodes saved them (empty when none)."""
        raw = await self._redis.get(keyspace.show_moderation(room))
        try:
            state = json.loads(raw) if raw is not None else {}
        except ValueError:
            return {}
        return state if isinstance(state, dict) else {}

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

    async def _refresh(self) -> None:
        """Keeps this node's keys of each show alive, and notices other nodes' members that expired."""
        while True:
            await asyncio.sleep(self._refresh_s)
            for room, members in list(self._rooms.items()):
                try:
                    if members:
                        await self._write(room, members)
                    for key in (keyspace.show_nodes(room), keyspace.show_chat_seq(room),
                                keyspace.show_moderation(room)):
                        await self._redis.expire(key, keyspace.SHOW_SHARED_TTL_S)
                    before = self._seen.get(room)
                    if await self.remote_users(room) != before and self.on_event is not None:
                        await self.on_event({"kind": KIND, "room": room, "what": "roster"})
                except aioredis.RedisError as exc:  # the next round tries again
                    log.warning("show span refresh failed", extra={"room": room, "error": str(exc)})
                except Exception:
                    log.exception("show span refresh failed")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
