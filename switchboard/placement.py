"""Placement: which node a client should open its socket on.

:func:`select` is the selector, a pure function of the registry's entries (after LiveKit's
``SystemLoadSelector``: drop nodes that cannot take more, prefer the client's region, take the least
loaded). :class:`Placement` adds the room pins: a show's room stays on the node it was placed on (its
origin) while that node lives, so every viewer of a show is sent to the node that has its media.

Two things keep a burst of clients (the viewers of a killed node, all asking within a second) from
all landing on one node: each :class:`Placement` counts the sessions it placed on a node since that
node's last heartbeat and adds them to the load the heartbeat wrote, and a
show's viewers, once every node holds its cap, go to the node with the fewest for its cap rather than
all to the origin (:func:`overflow`). A client that lost its node names it (``avoid``): that node is
never chosen for its new session while the registry still lists it (up to ``node.registry_ttl_s``),
nor for anyone's once :data:`REPORTERS` distinct users the API recently placed there (:meth:`Placement.record`)
reported it against the same heartbeat (counted in Redis, and the verdict kept there: every API
process sees it), until a newer heartbeat of it shows it alive: one client's word alone (a flaky
network, or a lie) does not take a live node out of placement, nor do accounts never sent there.

A viewer's room token also names :func:`alternates`: the nodes it goes straight to, with the token it
holds, if its node is lost (no token request in the burst of a killed node's clients), spread over
the other nodes by a hash of the user and the node (rendezvous hashing: a dead node's viewers split
evenly over the survivors, whatever heartbeat each token was read against).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import redis.asyncio as aioredis

from switchboard import keyspace
from switchboard.registry import NodeEntry, NodeRegistry

CPU_LIMIT = 0.9
"""Nodes above this CPU fraction take new rooms only when every node is above it."""
REPIN_LUA = (Path(__file__).resolve().parent / "lua" / "room_repin.lua").read_text()
REPORT_LUA = (Path(__file__).resolve().parent / "lua" / "node_report.lua").read_text()
REPORTERS = 2
"""Distinct users who must report a node lost (``avoid``), against one heartbeat of it, before
placement skips it for every client (the reporter's own new session skips it at once)."""
ALTERNATES = 2
"""Nodes a viewer's token answer names beside its own (:func:`alternates`)."""


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


def overflow(nodes: Iterable[NodeEntry], origin: str, region: str = "",
             exclude: Iterable[str] = ()) -> NodeEntry | None:
    """A show's viewer when every node holds its cap: the node with the fewest sessions for its cap
    (the origin on a tie: it needs no pipe), within ``region`` when one is there; never draining or
    excluded."""
    skip = set(exclude)
    open_ = [n for n in nodes if not n.draining and n.id not in skip]
    here = [n for n in open_ if n.region == region] if region else open_
    return min(here or open_, key=lambda n: (n.viewers / n.viewer_cap if n.viewer_cap else 0.0, n.id != origin, n.id),
               default=None)


def alternates(nodes: Iterable[NodeEntry], placed: str, key: str, region: str = "",
               exclude: Iterable[str] = (), limit: int = ALTERNATES) -> list[NodeEntry]:
    """Where a client placed on ``placed`` goes if that node is lost, in order: the other nodes that are
    not draining nor excluded, those below :data:`CPU_LIMIT` and not full first (as :func:`select`
    prefers them), then those in ``region``, each group ordered by a hash of ``key`` (the user) and the
    node id. Each client's order is its own and stable, so a lost node's clients spread evenly over the
    others without asking anyone at the moment of the loss.

    "Not full first" holds only while the nodes that are not full have room for the lost node's
    clients (:func:`_room_for_loss`). When they have not (every node near its cap: the lost node's
    clients overflow wherever they go, :func:`overflow`), fullness is not ranked, so the burst splits
    over every survivor rather than landing whole on the one node a little below its cap (measured:
    90 viewers of a killed edge all on the other edge while the origin sat at its cap)."""
    nodes = list(nodes)
    skip = {placed, *exclude}
    open_ = [n for n in nodes if not n.draining and n.id not in skip]
    lost = next((n for n in nodes if n.id == placed), None)
    spill = lost is not None and not _room_for_loss(lost, open_)

    def rank(n: NodeEntry) -> tuple[int, bool, bytes]:
        full = n.full and not spill
        tier = 0 if n.cpu < CPU_LIMIT and not full else 1 if n.cpu < CPU_LIMIT else 2
        return tier, bool(region) and n.region != region, hashlib.blake2b(f"{key}/{n.id}".encode(),
                                                                         digest_size=8).digest()

    return sorted(open_, key=rank)[:limit]


def _room_for_loss(lost: NodeEntry, others: list[NodeEntry]) -> bool:
    """Whether the nodes of ``others`` below their cap can take the sessions ``lost`` would send them:
    as many as it holds, or its cap if that is more (a token is read while its node still fills up)."""
    coming = max(lost.viewers, lost.viewer_cap)
    room = 0
    for n in others:
        if n.cpu >= CPU_LIMIT or n.full:
            continue
        if n.viewer_cap <= 0:
            return True  # no cap: room for any number
        room += n.viewer_cap - n.viewers
    return room >= coming


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
        self._report = redis.register_script(REPORT_LUA)
        self._placed: dict[str, tuple[int, int]] = {}
        """Node id -> (``updated_ms`` of its entry, sessions placed there since that heartbeat)."""

    async def _skip(self, entries: list[NodeEntry], avoid: str, reporter: str = "") -> tuple[str, ...]:
        """The nodes no client is placed on now: the one this client lost, and every node that
        :data:`REPORTERS` distinct users reported lost against the entry still listed (a false report
        costs a live node at most one heartbeat of new sessions). ``reporter``: the user naming
        ``avoid``; the report counts only if the API recently placed that user on the node
        (:meth:`record`). Reports and the verdict live in Redis (node_report.lua, the suspect marker
        read with the entries), so every API process counts and sees the same (one round trip, only on
        a request that names a node not yet suspected)."""
        suspect = {e.id for e in entries if e.suspected}
        lost = next((e for e in entries if e.id == avoid), None)
        if lost is not None and reporter and not lost.suspected:
            count = await self._report(
                keys=[keyspace.node_reports(avoid, lost.updated_ms), keyspace.node_suspect(avoid),
                      keyspace.node_placed(avoid, reporter)],
                args=[reporter, keyspace.NODE_REPORTS_TTL_S, lost.updated_ms, REPORTERS, keyspace.NODE_SUSPECT_TTL_S])
            if int(count) >= REPORTERS:
                suspect.add(avoid)
        return (avoid, *sorted(suspect)) if avoid else tuple(sorted(suspect))

    def alternates(self, entries: list[NodeEntry], placed: NodeEntry | None, key: str,
                   region: str = "", avoid: str = "") -> list[NodeEntry]:
        """:func:`alternates` for a client placed on ``placed``: never ``avoid`` (the node this client
        just lost) nor a node reported lost."""
        if placed is None:
            return []
        return alternates(entries, placed.id, key, region, exclude={avoid, *(e.id for e in entries if e.suspected)})

    async def record(self, user: str, nodes: Iterable[NodeEntry], ttl_s: int = keyspace.NODE_PLACED_TTL_S) -> None:
        """Notes that ``user`` was given a token naming each of ``nodes``: only such a user's report
        that a node is lost is counted (a throwaway account never placed there cannot vote it out)."""
        keys = [keyspace.node_placed(n.id, user) for n in nodes]
        if not keys:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.set(key, "1", ex=max(1, ttl_s))
            await pipe.execute()

    def _adjusted(self, entries: list[NodeEntry]) -> list[NodeEntry]:
        """The entries with the sessions this placement sent them since their heartbeat added (the
        heartbeat's count lags: a burst placed on its figures alone would all go to one node)."""
        live = {e.id for e in entries}
        for gone in [i for i in self._placed if i not in live]:
            del self._placed[gone]
        out = []
        for e in entries:
            stamp, extra = self._placed.get(e.id, (e.updated_ms, 0))
            out.append(dataclasses.replace(e, viewers=e.viewers + extra) if stamp == e.updated_ms and extra else e)
        return out

    def _sent(self, entry: NodeEntry | None, seen: list[NodeEntry]) -> NodeEntry | None:
        """Counts one session placed on ``entry`` (against its entry's heartbeat, as read)."""
        if entry is not None:
            stamp = next((e.updated_ms for e in seen if e.id == entry.id), entry.updated_ms)
            was, extra = self._placed.get(entry.id, (stamp, 0))
            self._placed[entry.id] = (stamp, extra + 1 if was == stamp else 1)
        return entry

    async def for_session(self, region: str = "", avoid: str = "", reporter: str = "") -> NodeEntry | None:
        """A node for a socket that joins no show yet (calls, random chat); None: no node registered.
        ``avoid``: a node the client (user ``reporter``) just lost (never chosen)."""
        entries = await self.registry.nodes()
        adjusted = self._adjusted(entries)
        return self._sent(select(adjusted, region, exclude=await self._skip(entries, avoid, reporter))
                          or select(adjusted, region, exclude=(avoid,)), entries)

    async def look(self, room: str) -> RoomLook:
        """What :meth:`for_room` reads (the live nodes and the room's pin), and nothing written: a
        caller may read it alongside other work and place the room only if that work succeeds."""
        # One pipeline, queued at once (no task per read): it leaves with the caller's other commands
        # of this loop pass (the lean client writes a pass's commands together).
        entries, (pinned,) = await self.registry.nodes_and_get([keyspace.room_node(room)])
        return RoomLook(entries, pinned)

    async def for_room(self, room: str, region: str = "", viewer: bool = False,
                       seen: RoomLook | None = None, avoid: str = "", reporter: str = "") -> NodeEntry | None:
        """The node of ``room``: its origin while that node lives and is not draining, else a newly
        selected node, pinned to the room (a draining origin sends its clients to the node the same
        selector picks). A ``viewer`` is sent elsewhere when the origin is full (``cascade.viewers_per_node``):
        that node pulls the show from the origin (an edge); when every node is full, to the node with
        the fewest for its cap (:func:`overflow`). None: no node registered. ``seen``: :meth:`look`'s
        answer, read just before.

        ``avoid``: the node the client just lost (its socket dropped and a connect to it failed): never
        chosen as an edge or a new origin. A broadcaster (not ``viewer``) that lost the origin moves
        the room off it at once, as if the registry had forgotten it; a viewer's word alone does not
        move a show (the origin is where its publisher is: a wrong claim would split it). ``reporter``:
        the user naming ``avoid`` (reports of :data:`REPORTERS` users skip the node for everyone)."""
        read, pinned = seen if seen is not None else await self.look(room)
        entries = self._adjusted(read)
        nodes = {n.id: n for n in entries}
        pin = "" if pinned is None else (pinned.decode() if isinstance(pinned, bytes) else str(pinned))
        entry = nodes.get(pin) if pin else None
        skip = await self._skip(read, avoid, reporter)
        if entry is not None and not entry.draining and not (entry.id == avoid and not viewer):
            if viewer and entry.full:
                others = [n for n in entries if not n.full]
                return self._sent(select(others, region, exclude=(entry.id, *skip))
                                  or overflow(entries, entry.id, region, exclude=skip) or entry, read)
            return self._sent(entry, read)
        chosen = select(entries, region, exclude=skip) or select(entries, region, exclude=(avoid,))
        if chosen is None:
            return None
        # Its node is gone (killed, or lost by its broadcaster) or draining, or it has none: the room
        # moves to the chosen node, unless a concurrent request moved it first (then follow that pin:
        # one node for the show).
        gone = pin
        final = await self._repin(keys=[keyspace.room_node(room)], args=[gone, chosen.id, keyspace.ROOM_PIN_TTL_S])
        owner = final.decode() if isinstance(final, bytes) else str(final)
        return self._sent(nodes.get(owner) or chosen, read)
