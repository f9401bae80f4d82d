"""Calls and matches across nodes, through the SFU (the cascade, docs/scaling.md).

When the two parties of a call or match through the SFU are on two nodes, each node opens the call's
room for its own party and pulls the other party's media from the other node by a sealed pipe (a pipe
carries only its node's own publishers, so nothing comes back where it came from). Each party's node
writes itself in the call's node set (``keyspace.call_nodes``) and pulls from the nodes already there,
telling them to pull from it (``call.spread`` on their node channels). A moderator's tap from any other
node reads the set and pulls every party into a room of its own there, hidden: the parties' nodes see
one more pipe, whose consumers never ask their publishers for a keyframe.

A tap follows a party that moved (its node killed or drained, the party back with ``call.rejoin``): the
tapping node reads the call's node set again every ``WATCH_S`` and pulls from any live node new in it
(the party's new node wrote itself there), while the cascade drops the pipe of the node that went away.
A party that comes back on the tapping node itself takes the tap's room over (:meth:`untapped`): that
node then spreads the call as any party's node does.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from sfu.errors import SfuError
from signaling.cascade import WATCH_S, Cascade
from signaling.errors import NotFound, Unavailable
from signaling.hub import Hub
from switchboard import keyspace
from switchboard.ids import NodeId, RoomId, UserId
from switchboard.tasks import stop_tasks

log = logging.getLogger("switchboard.signaling")

KIND = "call.spread"
"""The node-channel command: a party's node asks the other party's node to pull from it."""


@dataclass(frozen=True)
class Spread:
    """A call through the SFU over several nodes, as a tapping node reads it."""

    kind: str
    users: tuple[UserId, UserId]
    started_at: int
    nodes: tuple[NodeId, ...]


class CallSpan:
    """The calls through the SFU this node holds a party of, and whose other party is elsewhere."""

    def __init__(self, redis: aioredis.Redis, hub: Hub, cascade: Cascade, node_id: NodeId,
                 here: Callable[[UserId], bool]) -> None:
        self._redis = redis
        self._hub = hub
        self.cascade = cascade
        self.node_id = node_id
        self.here = here
        """Whether a user has a session on this node."""
        self._rooms: set[RoomId] = set()
        self._taps: set[RoomId] = set()
        """Call rooms held here for a moderator's tap only (no party here): their node sets are watched."""
        self._asking: set[tuple[RoomId, NodeId]] = set()
        """A tap's pulls under way (the watch starts each once)."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._watch: asyncio.Task[None] | None = None
        hub.on_command(self._command, kinds=(KIND,))

    def start(self) -> None:
        self._watch = asyncio.get_running_loop().create_task(self._follow_taps(), name="call-span-taps")

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(self._guarded(work), name="call-span")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, work: Any) -> None:
        try:
            await work
        except (NotFound, Unavailable, SfuError, aioredis.RedisError) as exc:
            log.warning("a call's far party not pulled", extra={"error": str(exc)})
        except Exception:
            log.exception("a call's far party not pulled")

    async def close(self) -> None:
        watch, self._watch = self._watch, None
        await stop_tasks([*([watch] if watch is not None else []), *self._tasks])

    def started(self, room: RoomId, kind: str, users: tuple[UserId, UserId], started_at: int,
                open_room: Callable[[], Any]) -> None:
        """A call through the SFU started with a party here: when the other is elsewhere, spread it."""
        if all(self.here(u) for u in users) or room in self._rooms:
            return
        self._rooms.add(room)
        self._spawn(self._join(room, kind, users, started_at, open_room))

    async def _join(self, room: RoomId, kind: str, users: tuple[UserId, UserId], started_at: int,
                    open_room: Callable[[], Any]) -> None:
        await open_room()
        self.cascade.serving.add(room)
        record = json.dumps({"kind": kind, "users": list(users), "started_at": started_at})
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(keyspace.call_spread(room), record, ex=keyspace.CALL_SPREAD_TTL_S)
            pipe.sadd(keyspace.call_nodes(room), self.node_id)
            pipe.expire(keyspace.call_nodes(room), keyspace.CALL_SPREAD_TTL_S)
            pipe.smembers(keyspace.call_nodes(room))
            *_, members = await pipe.execute()
        # Each node on its own: a dead one (its party comes back here or elsewhere: docs/scaling.md,
        # node loss) must not keep the others' media away while the registry is asked about it.
        await asyncio.gather(*(self._spread(room, NodeId(_text(m))) for m in members if _text(m) != self.node_id))

    async def _spread(self, room: RoomId, node: NodeId) -> None:
        try:
            await self._hub.command(node, {"kind": KIND, "room": room, "node": self.node_id})
            await self.cascade.pull_from(room, node, clip=True)
        except NotFound as exc:  # the node left the registry (killed), or holds the call no more
            log.info("a call's node left it", extra={"room": room, "node": node, "error": str(exc)})
            await self._redis.srem(keyspace.call_nodes(room), node)
        except (Unavailable, SfuError, aioredis.RedisError) as exc:
            log.warning("a call's far party not pulled", extra={"error": str(exc)})

    async def _command(self, message: dict[str, Any]) -> None:
        room, node = RoomId(str(message.get("room"))), NodeId(str(message.get("node")))
        if room in self._rooms:  # pulled beside the node channel's reader, which the pipe's answer needs
            self._spawn(self.cascade.pull_from(room, node, clip=True))

    async def ended(self, room: RoomId) -> None:
        """The call ended (its room here is closed): stop pulling, leave the node set."""
        if room not in self._rooms:
            return
        self._rooms.discard(room)
        await self.cascade.release(room)
        try:
            await self._redis.srem(keyspace.call_nodes(room), self.node_id)
            if not await self._redis.scard(keyspace.call_nodes(room)):
                await self._redis.delete(keyspace.call_spread(room))
        except aioredis.RedisError as exc:  # they expire
            log.warning("call spread keys not cleaned", extra={"room": room, "error": str(exc)})

    async def tapped(self, room: RoomId, nodes: tuple[NodeId, ...]) -> None:
        """A tap's room here (no party here): each party's node pulled into it, then followed. A node that
        cannot be pulled (killed, its party on its way elsewhere) is skipped while another one is."""
        failed: Exception | None = None
        pulled = False
        for node in nodes:
            try:
                await self.cascade.pull_from(room, node)
                pulled = True
            except (NotFound, Unavailable) as exc:
                failed = exc
        if not pulled and failed is not None:
            raise failed
        self._taps.add(room)

    def untapped(self, room: RoomId) -> None:
        """The tap's room closed, or a party took it over: its node set is no longer watched from here."""
        self._taps.discard(room)

    async def _follow_taps(self) -> None:
        while True:
            await asyncio.sleep(WATCH_S)
            for room in list(self._taps):
                try:
                    await self._follow(room)
                except aioredis.RedisError as exc:  # the next round reads again
                    log.warning("a tapped call's nodes not read", extra={"room": room, "error": str(exc)})

    async def _follow(self, room: RoomId) -> None:
        """Pulls the tapped call from each live node in its node set that it is not pulled from yet."""
        pull = self.cascade.pulls.get(room)
        if pull is None:  # lost: the tap ends (the cascade told the call media)
            return
        members = [NodeId(_text(m)) for m in await self._redis.smembers(keyspace.call_nodes(room))]
        for node in members:
            key = (room, node)
            if node == self.node_id or node in pull.pipes or key in self._asking:
                continue
            if await self.cascade.registered(node):  # a killed node stays in the set until a party's node drops it
                self._asking.add(key)
                self._spawn(self._pull_for_tap(room, node))

    async def _pull_for_tap(self, room: RoomId, node: NodeId) -> None:
        try:
            if room in self._taps:
                await self.cascade.pull_from(room, node)
                log.info("a tapped call followed to a node", extra={"room": room, "node": node})
        finally:
            self._asking.discard((room, node))

    async def find(self, room: RoomId) -> Spread | None:
        """A call through the SFU on other nodes (for a tap from here), or None."""
        raw, members = await asyncio.gather(self._redis.get(keyspace.call_spread(room)),
                                             self._redis.smembers(keyspace.call_nodes(room)))
        if raw is None or not members:
            return None
        try:
            d = json.loads(raw)
            users = (UserId(str(d["users"][0])), UserId(str(d["users"][1])))
            return Spread(str(d["kind"]), users, int(d["started_at"]),
                          tuple(NodeId(_text(m)) for m in members))
        except (ValueError, KeyError, IndexError, TypeError):
            return None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
