"""The cascade: one show over several nodes (docs/scaling.md), media side.

The node holding a show's publisher is its origin: it writes the show's origin record
(``keyspace.show_origin``) and refreshes it while the show lives. A viewer placed on another node (the
origin full or draining: ``cascade.viewers_per_node``) joins there, and that node becomes an edge: it
finds the origin in the record and the origin's pipe address in the node registry, opens its end of a
sealed pipe and asks the origin for the other end on the origin's node channel (``pipe.open``). The
origin checks the asking node in the registry, opens its end there, exports the show's tracks into it
and answers on the edge's channel (``pipe.ready``: its port and the tracks). One copy of each track
crosses per edge; the edge's viewers get theirs from the edge's own producers (NACKs answered there,
PLIs merged and sent back through the pipe, which the origin merges again before its publisher).

A broadcaster that creates its show on another node (its origin drained, or it reconnected there)
moves the show: that node claims the record (:mod:`signaling.origin_record`) and tells the old origin
(``show.moved``), which hands the show over (its copy becomes an edge: ``on_moved``) and sends its edges
``pipe.gone``: each pulls the show again at once from whatever the record names. An edge also checks
each show it pulls every ``WATCH_S``: its pipe died (``sfu.router_tick.PIPE_SILENCE_S``), its origin
left the node registry (killed) or the record names another node: it pulls again as soon as that node
is registered; when the record is gone its copy ends, as when its last local member leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from sfu.errors import SfuError
from sfu.types import NodePipes
from signaling.errors import NotFound, Unavailable
from signaling.hub import Hub
from signaling.origin_record import Origin, OriginRecords
from switchboard.ids import NodeId, RoomId
from switchboard.registry import NodeEntry, NodeRegistry
from switchboard.tasks import stop_task

log = logging.getLogger("switchboard.signaling")

WATCH_S = 1.0
"""How often the origin refreshes its records and an edge checks that its pipes and origins still live."""
NEW_NODE_S = 3.0
"""How long the origin looks for an asking node in the registry: a node takes sockets a heartbeat
before its first entry is written."""
KINDS = ("pipe.open", "pipe.ready", "pipe.refused", "pipe.close", "pipe.gone", "show.moved")
"""The node-channel commands of the cascade (docs/scaling.md)."""


@dataclass
class Pull:
    """What this node pulls into one room: a show's copy (from its origin), or the far parties of a
    call (from each of their nodes)."""

    origin: NodeId | None
    """A show's origin; None for a call's room."""
    pipes: dict[NodeId, str]
    """The node pulled from -> the pipe it comes through."""


Lost = Callable[[RoomId], Awaitable[None]]
"""Told when an edge's show can no longer be pulled (its record is gone: the show ended or its origin died)."""
Moved = Callable[[RoomId, Origin], Awaitable[None]]
"""Told when a show this node originated goes on at another node (its broadcaster created it there)."""


class Cascade:
    """Both sides of the node's pipes between nodes: serving the shows it originates, pulling others'."""

    def __init__(self, redis: aioredis.Redis, hub: Hub, media: NodePipes, node_id: NodeId,
                 timeout_s: float, watch_s: float = WATCH_S) -> None:
        self._redis = redis
        self._hub = hub
        self._media = media
        self.node_id = node_id
        self._registry = NodeRegistry(redis)
        self.records = OriginRecords(redis, node_id)
        self._timeout_s = timeout_s
        self._watch_s = watch_s
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._pulling: dict[RoomId, asyncio.Lock] = {}
        self.origins: dict[RoomId, Origin] = {}
        """Shows this node originates (their records are refreshed by the watch)."""
        self.serving: set[RoomId] = set()
        """Call rooms other nodes may pull this node's parties from."""
        self.exports: dict[tuple[RoomId, str], NodeId] = {}
        """Origin side: (room, pipe) -> the edge it feeds."""
        self.pulls: dict[RoomId, Pull] = {}
        """Edge side: the shows this node pulls."""
        self.on_lost: Lost | None = None
        self.on_moved: Moved | None = None
        self._task: asyncio.Task[None] | None = None
        self._serving: set[asyncio.Task[None]] = set()
        hub.on_command(self._command, kinds=KINDS)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch(), name="cascade-watch")

    async def close(self) -> None:
        """Stops the watch, closes the edge pipes and withdraws the records. Safe to call twice."""
        task, self._task = self._task, None
        if task is not None:
            await stop_task(task)
        for serving in list(self._serving):
            await stop_task(serving)
        for room in list(self.pulls):
            await self.release(room)
        for room in list(self.origins):
            await self.ended(room)

    # origin side ---------------------------------------------------------------------------------

    async def opened(self, room: RoomId, origin: Origin) -> None:
        """A show started here: edges find it from now on (a node that had it hears ``show.moved``)."""
        self.origins[room] = origin
        before = await self.records.claim(room, origin)
        if before is not None and await self._registry.get(before.node) is not None:
            with contextlib.suppress(aioredis.RedisError):  # it sees the record at its next refresh
                await self._hub.command(before.node, {"kind": "show.moved", "room": room, "node": self.node_id})

    async def _moved(self, room: RoomId, new: Origin) -> None:
        """Another node claimed a show we originated: our edges hear ``pipe.gone``, ``on_moved`` keeps
        our copy as an edge."""
        if self.origins.pop(room, None) is None:
            return
        log.info("show moved to another node", extra={"room": room, "origin": new.node})
        await self._gone(room)
        if self.on_moved is not None:
            await self.on_moved(room, new)

    async def _gone(self, room: RoomId) -> None:
        """Our side of ``room`` closed: each node pulling it hears so at once (``pipe.gone``), not after
        its pipe's silence."""
        for key in [k for k in self.exports if k[0] == room]:
            edge = self.exports.pop(key)
            try:
                await self._hub.command(edge, {"kind": "pipe.gone", "room": room, "pipe": key[1]})
            except aioredis.RedisError:
                log.warning("pipe.gone not sent", extra={"room": room})

    async def ended(self, room: RoomId) -> None:
        """The show ended here (its media closes with its room): forget its record and exports."""
        if self.origins.pop(room, None) is None:
            return
        await self._gone(room)
        try:
            await self.records.withdraw(room)
        except aioredis.RedisError as exc:  # it expires by itself
            log.warning("show origin record not removed", extra={"room": room, "error": str(exc)})

    async def _serve(self, message: dict[str, Any]) -> None:
        """``pipe.open`` from an edge: open our end toward the edge's registered pipe address, export."""
        room, pipe, edge, port = (RoomId(str(message["room"])), str(message["pipe"]), NodeId(str(message["node"])),
                                  int(message["port"]))
        reply: dict[str, Any] = {"kind": "pipe.refused", "pipe": pipe}
        entry = await self._entry(edge)
        if room not in self.origins and room not in self.serving:
            reply["reason"] = "no such show here"
        elif entry is None:
            reply["reason"] = "unknown node"
        else:
            try:
                mine = await self._media.open_node_pipe(room, pipe)
                tracks = await self._media.connect_node_pipe(room, pipe, entry.pipe_host, port, True)
                self.exports[(room, pipe)] = edge
                reply = {"kind": "pipe.ready", "pipe": pipe, "port": mine, "tracks": tracks}
            except SfuError as exc:
                reply["reason"] = str(exc)
                await self._media.close_node_pipe(room, pipe)
        await self._hub.command(edge, reply)

    # edge side -----------------------------------------------------------------------------------

    async def origin_of(self, room: RoomId) -> Origin | None:
        """The live show's origin record, when its node is another live node."""
        origin = await self.records.read(room)
        return origin if origin is not None and origin.node != self.node_id else None

    async def pull(self, room: RoomId, open_room: Callable[[], Awaitable[None]]) -> Origin:
        """Pulls ``room`` from its origin (once per room: concurrent joins wait for the same pull).
        ``open_room`` opens the local room first. Raises NotFound (no such show live anywhere) or
        Unavailable (the origin did not answer)."""
        lock = self._pulling.setdefault(room, asyncio.Lock())
        async with lock:
            origin = await self.origin_of(room)
            if origin is None:
                raise NotFound(f"no show {room!r} is live")
            if room in self.pulls:
                return origin
            await open_room()
            self.pulls[room] = Pull(origin.node, {origin.node: await self._open(room, origin.node)})
            return origin

    async def pull_moved(self, room: RoomId, node: NodeId) -> None:
        """A show we originated went on at ``node``: our room pulls it from there (the watch retries)."""
        async with self._pulling.setdefault(room, asyncio.Lock()):
            pull = self.pulls[room] = Pull(node, {})
            try:
                pull.pipes[node] = await self._open(room, node)
            except (NotFound, Unavailable, SfuError) as exc:
                log.warning("moved show not pulled yet", extra={"room": room, "error": str(exc)})

    async def pull_from(self, room: RoomId, node: NodeId, *, clip: bool = False) -> None:
        """Pulls what ``node`` publishes in ``room`` (a call's far party) into our open room, once.
        ``clip``: the pulled tracks keep clip buffers here (a party's node; a tap's node does not)."""
        lock = self._pulling.setdefault(room, asyncio.Lock())
        async with lock:
            pull = self.pulls.setdefault(room, Pull(None, {}))
            if node not in pull.pipes and node != self.node_id:
                pull.pipes[node] = await self._open(room, node, clip)

    async def _open(self, room: RoomId, origin: NodeId, clip: bool = False) -> str:
        entry = await self._entry(origin)
        if entry is None:
            raise NotFound(f"show {room!r}: its node is gone")
        pipe = f"{self.node_id}/{next(self._ids)}"
        port = await self._media.open_node_pipe(room, pipe, clip)
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[pipe] = answer
        try:
            await self._hub.command(origin, {"kind": "pipe.open", "room": room, "pipe": pipe, "node": self.node_id,
                                             "port": port})
            async with asyncio.timeout(self._timeout_s):
                reply = await answer
            if reply["kind"] != "pipe.ready":
                raise NotFound(f"show {room!r}: its origin refused: {reply.get('reason', '')}")
            await self._media.connect_node_pipe(room, pipe, entry.pipe_host, int(reply["port"]), False,
                                                list(reply["tracks"]))
            return pipe
        except TimeoutError:
            await self._media.close_node_pipe(room, pipe)
            raise Unavailable(f"show {room!r}: its origin did not answer") from None
        except BaseException:
            await self._media.close_node_pipe(room, pipe)
            raise
        finally:
            self._pending.pop(pipe, None)

    async def release(self, room: RoomId) -> None:
        """The edge's copy ended (its last member left, or the show ended): close our end, tell the origin."""
        pull = self.pulls.pop(room, None)
        self._pulling.pop(room, None)
        if room in self.serving:
            self.serving.discard(room)
            await self._gone(room)
        if pull is None:
            return
        for node, pipe in list(pull.pipes.items()):  # (a repull may change them meanwhile)
            await self._media.close_node_pipe(room, pipe)
            try:
                await self._hub.command(node, {"kind": "pipe.close", "room": room, "pipe": pipe})
            except aioredis.RedisError:  # the far end goes silent and closes by itself
                log.warning("pipe.close not sent", extra={"room": room})

    async def _repull(self, room: RoomId, pull: Pull, node: NodeId) -> None:
        """A call's pipe from ``node`` died (it went silent): its party is pulled again from its node
        (while that node lives)."""
        del pull.pipes[node]
        try:
            await self.pull_from(room, node)
        except (NotFound, Unavailable):  # the call ended there, or its node is gone
            # Other nodes' pipes of the room live on (a party back from a dead node on a third one).
            if not pull.pipes and self.pulls.get(room) is pull:
                del self.pulls[room]
                if self.on_lost is not None:
                    await self.on_lost(room)

    async def _call_pipe_gone(self, room: RoomId, pull: Pull, pipe: str) -> None:
        """A call's far node closed its side: that node's pipe is forgotten. The room is lost only when it
        was the last one: a tap keeps the other party's node while the moved party's new node is found."""
        for node, each in list(pull.pipes.items()):
            if each == pipe:
                del pull.pipes[node]
        if not pull.pipes and self.pulls.get(room) is pull:
            del self.pulls[room]
            if self.on_lost is not None:
                await self.on_lost(room)

    async def registered(self, node: NodeId) -> bool:
        """Whether ``node`` is in the node registry now (a killed node leaves it within its TTL)."""
        return await self._registry.get(node) is not None

    async def _follow(self, room: RoomId, pull: Pull, live: list[str]) -> None:
        """An edge's show pulled again, or its copy ended (the module's doc says when)."""
        async with self._pulling.setdefault(room, asyncio.Lock()):  # the watch and a pipe.gone, once
            if self.pulls.get(room) is pull:
                await self._follow_locked(room, pull, live)

    async def _follow_locked(self, room: RoomId, pull: Pull, live: list[str]) -> None:
        assert pull.origin is not None
        origin = await self.origin_of(room)
        pipe = pull.pipes.get(pull.origin)
        alive = await self._registry.get(pull.origin) is not None
        if pipe is not None and pipe in live and alive and origin is not None and origin.node == pull.origin:
            return
        if pipe is not None:
            del pull.pipes[pull.origin]
            await self._media.close_node_pipe(room, pipe)
            if alive:
                with contextlib.suppress(aioredis.RedisError):  # its end goes silent and closes by itself
                    await self._hub.command(pull.origin, {"kind": "pipe.close", "room": room, "pipe": pipe})
        if origin is None:
            if self.pulls.pop(room, None) is not None and self.on_lost is not None:
                await self.on_lost(room)
            return
        if await self._registry.get(origin.node) is None:  # a dead origin's record, until the publisher moves
            return
        try:
            pull.pipes[origin.node], pull.origin = await self._open(room, origin.node), origin.node
            log.info("show pulled again", extra={"room": room, "origin": origin.node})
        except (NotFound, Unavailable, SfuError) as exc:
            log.warning("show not pulled again yet", extra={"room": room, "error": str(exc)})

    # both ----------------------------------------------------------------------------------------

    async def _command(self, message: dict[str, Any]) -> None:
        kind = message["kind"]
        try:
            if kind == "pipe.open":  # served beside the node channel's reader, which the answers need
                self._in_background(self._guarded(message), "cascade-serve")
            elif kind == "pipe.gone":
                room, pipe = RoomId(str(message["room"])), str(message["pipe"])
                pull = self.pulls.get(room)
                if pull is not None and pipe in pull.pipes.values():
                    await self._media.close_node_pipe(room, pipe)
                    if pull.origin is None:  # a call left the far node (ended there, or its party moved)
                        await self._call_pipe_gone(room, pull, pipe)
                    else:  # a show: pulled again now from whatever its record names (moved), or given up
                        self._in_background(self._follow_now(room), "cascade-follow")
            elif kind == "show.moved":  # believed as far as the record says so
                record = await self.records.read(room := RoomId(str(message["room"])))
                if room in self.origins and record is not None and record.node != self.node_id:
                    await self._moved(room, record)
            elif kind == "pipe.close":
                room, pipe = RoomId(str(message["room"])), str(message["pipe"])
                if self.exports.pop((room, pipe), None) is not None:
                    await self._media.close_node_pipe(room, pipe)
            else:
                answer = self._pending.get(str(message.get("pipe")))
                if answer is not None and not answer.done():
                    answer.set_result(message)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("malformed cascade command dropped", extra={"kind": kind, "error": str(exc)})

    def _in_background(self, work: Coroutine[Any, Any, None], name: str) -> None:  # beside the channel's reader
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._serving.add(task)
        task.add_done_callback(self._serving.discard)

    async def _follow_now(self, room: RoomId) -> None:
        pull = self.pulls.get(room)
        if pull is None or pull.origin is None:
            return
        try:
            await self._follow(room, pull, await self._media.node_pipes(room))
        except (aioredis.RedisError, SfuError, NotFound, Unavailable) as exc:  # the watch tries again
            log.warning("show not pulled again yet", extra={"room": room, "error": str(exc)})

    async def _entry(self, node: NodeId) -> NodeEntry | None:
        """The node's registry entry (waiting up to ``NEW_NODE_S`` for a node that just started)."""
        entry = await self._registry.get(node)
        deadline = asyncio.get_running_loop().time() + NEW_NODE_S
        while entry is None and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.2)
            entry = await self._registry.get(node)
        return entry

    async def _guarded(self, message: dict[str, Any]) -> None:
        try:
            await self._serve(message)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("malformed pipe.open dropped", extra={"error": str(exc)})
        except Exception:
            log.exception("serving a pipe.open failed")

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._watch_s)
            try:
                for room, origin in list(self.origins.items()):
                    taken = await self.records.refresh(room, origin)
                    if taken is not None:
                        await self._moved(room, taken)
                for room, pull in list(self.pulls.items()):
                    live = await self._media.node_pipes(room)
                    if pull.origin is not None:
                        await self._follow(room, pull, live)
                        continue
                    for node, pipe in list(pull.pipes.items()):
                        if pipe not in live:
                            await self._repull(room, pull, node)
            except (aioredis.RedisError, SfuError, NotFound, Unavailable) as exc:  # the next round tries again
                log.warning("cascade watch failed", extra={"error": str(exc)})
            except Exception:
                log.exception("cascade watch failed")
