"""Placement: which node a client should open its socket on.

:func:`select` is the selector, a pure function of the registry's entries (after LiveKit's
``SystemLoadSelector``: drop nodes that cannot take more, prefer the client's region, take the least
loaded). :class:`Placement` adds the room pins: a show's room stays on the node it was placed on (its
origin) while that node lives, so every viewer of a show is sent to the node that has its media.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import redis.asyncio as aioredis

from switchboard import keyspace
from switchboard.registry import NodeEntry, NodeRegistry

CPU_LIMIT = 0.9
"""Nodes above this CPU fraction take new rooms only when every node is above it."""
REPIN_LUA = (Path(__file__).resolve().parent / "lua" / "room_repin.lua").read_text()


def load(entry: NodeEntry) -> tuple[float, int, int, str]:
    """The sort key of the least-loaded choice: CPU, then sessions, then rooms, then id (stable ties)."""
    return (round(entry.cpu, 2), entry.viewers, entry.rooms, entry.id)


def select(nodes: Iterable[NodeEntry], region: str = "", exclude: Iterable[str] = ()) -> NodeEntry | None:
    """The node for a new room or session: never a draining or excluded one; within ``region`` when
    a node there can take it (else any region); below :data:`CPU_LIMIT` when one is; least loaded."""
    skip = set(exclude)
    open_ = [n for n in nodes if not n.draining and n.id not in skip]
    cool = [n for n in open_ if n.cpu < CPU_LIMIT]
    here = (lambda n: n.region == region) if region else (lambda n: True)
    for candidates in ([n for n in cool if here(n)], cool, [n for n in open_ if here(n)], open_):
        if candidates:
            return min(candidates, key=load)
    return None


class RoomLook(NamedTuple):
    """The registry and a room's pin, as :meth:`Placement.look` read them."""

    entries: list[NodeEntry]
    """Every live node."""
    pinned: bytes | str | None
    """The node id the room is pinned to, if any."""


class Placement:
    """Answers "where" for the control API's token routes, from the registry and the room pins."""

    def __init__(self, redis: aioredis.Redis, reads: aioredis.Redis | None = None) -> None:
        self._redis = redis
        self._reads = reads if reads is not None else redis
        """Where the registry and pins are read (the API's lean client, switchboard/resp.py); the
        re-pin script runs on ``redis``."""
        self.registry = NodeRegistry(self._reads)
        self._repin = redis.register_script(REPIN_LUA)

    async def for_session(self, region: str = "") -> NodeEntry | None:
        """A node for a socket that joins no show yet (calls, random chat); None: no node registered."""
        return select(await self.registry.nodes(), region)

    async def look(self, room: str) -> RoomLook:
        """What :meth:`for_room` reads (the live nodes and the room's pin), and nothing written: a
        caller may read it alongside other work and place the room only if that work succeeds."""
        # One pipeline, queued at once (no task per read): it leaves with the caller's other commands
        # of this loop pass (the lean client writes a pass's commands together).
        entries, (pinned,) = await self.registry.nodes_and_get([keyspace.room_node(room)])
        return RoomLook(entries, pinned)

    async def for_room(self, room: str, region: str = "", viewer: bool = False,
                       seen: RoomLook | None = None) -> NodeEntry | None:
        """The node of ``room``: its origin while that node lives and is not draining, else a newly
        selected node, pinned to the room (a draining origin sends its clients to the node the same
        selector picks). A ``viewer`` is sent elsewhere when the origin is full (``cascade.viewers_per_node``):
        that node pulls the show from the origin (an edge). None: no node registered. ``seen``:
        :meth:`look`'s answer, read just before."""
        entries, pinned = seen if seen is not None else await self.look(room)
        nodes = {n.id: n for n in entries}
        if pinned is not None:
            entry = nodes.get(pinned.decode() if isinstance(pinned, bytes) else str(pinned))
            if entry is not None and not entry.draining:
                if viewer and entry.full:
                    return select([n for n in nodes.values() if not n.full], region, exclude=(entry.id,)) or entry
                return entry
        chosen = select(nodes.values(), region)
        if chosen is None:
            return None
        # Its node is gone (killed) or draining, or it has none: the room moves to the chosen node,
        # unless a concurrent request moved it first (then follow that pin: one node for the show).
        gone = "" if pinned is None else (pinned.decode() if isinstance(pinned, bytes) else str(pinned))
        final = await self._repin(keys=[keyspace.room_node(room)], args=[gone, chosen.id, keyspace.ROOM_PIN_TTL_S])
        owner = final.decode() if isinstance(final, bytes) else str(final)
        return nodes.get(owner) or chosen
