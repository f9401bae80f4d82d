"""The lease of the 1:1 calls a node holds a party of, and the watch for a party whose node died.

A call's Redis records (``keyspace.call``, both ``keyspace.user_call`` keys) live only while a node
holding one of its parties refreshes them: every :data:`REFRESH_S` each node renews them for
:data:`LEASE_S`. When every node of a call dies (kill -9) and nobody comes back, its records expire
within :data:`LEASE_S` and both users are free to call again (never "busy" for hours).

The call hash names the node of each party (``caller_node``, ``callee_node``: written at invite,
accept and ``call.rejoin``). A node of many (one in the node registry) checks every :data:`TICK_S`
that the far party's node of each call it holds is still registered: a party whose node died has
``node.call_rejoin_s`` to come back on a live node (its client asks the API again, opens a new
session and sends ``call.rejoin``); a party that does not is lost, and the call ends for both with
the reason :data:`NODE_LOST`. A paid call whose meter ran on the dead node ends as soon as that is
seen: no node could go on holding and posting its minutes.

A random-chat match goes on as a call does: each party's node writes itself in
``keyspace.match_nodes`` (with the match's media, :data:`MEDIA_FIELD`), a party whose node died has
``node.call_rejoin_s`` to come back on a live node with ``call.rejoin`` (naming the match's session id:
its new node writes itself there), and a node whose party's peer stays out of the registry that long
ends the match: both get ``match.ended`` with :data:`NODE_LOST` (never a silent half-match).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from switchboard.ids import NodeId, UserId
from switchboard.keyspace import MATCH_NODES_TTL_S, call, match_nodes, match_pair, user_call
from switchboard.redis_client import text
from switchboard.registry import NodeRegistry
from switchboard.tasks import stop_task

log = logging.getLogger("switchboard.signaling")

LEASE_S = 30
"""A call's records outlive the last node holding a party of it by at most this much."""
REFRESH_S = 5.0
"""How often the nodes of a call renew its lease."""
TICK_S = 1.0
"""How often a node looks for calls whose far party's node left the registry."""
UNSEEN_S = 3.0
"""How long a node must stay out of the registry before it counts as gone (one that just started takes
sockets a heartbeat before its first entry is written)."""
NODE_LOST = "node_lost"
"""The ``call.ended`` reason when a party's node died and the call could not go on."""

MEDIA_FIELD = ":media"
"""The field of ``keyspace.match_nodes`` holding the match's media (``p2p``/``sfu``: no user id starts
with a colon), read by a party's ``call.rejoin`` on another node."""

EndCall = Callable[[str, str], Awaitable[bool]]
"""``end(call_id, reason)``: ends an active call on both sides (the call book's)."""
EndMatch = Callable[[UserId, UserId, str], Awaitable[bool]]
"""``part(a, b, reason)``: ends the match of ``a`` and ``b`` (the queue's)."""


class CallLease:
    """The active calls with a party on this node: their records renewed, their far parties watched."""

    def __init__(self, redis: aioredis.Redis, node_id: NodeId, registry: NodeRegistry | None, rejoin_s: float,
                 end: EndCall, tick_s: float = TICK_S, unseen_s: float = UNSEEN_S) -> None:
        self._redis = redis
        self.node_id = node_id
        self._registry = registry
        """The node registry; None: a lone node (``switchboard up``), whose far parties cannot be on a dead node."""
        self.rejoin_s = rejoin_s
        self._end = end
        self._tick_s = tick_s
        self.unseen_s = unseen_s
        self.held: dict[str, tuple[UserId, UserId]] = {}
        """Call id -> (caller, callee) of every active call with a party here."""
        self._lost: dict[str, float] = {}
        """Call or match id -> when (monotonic) a party's node was first seen out of the registry."""
        self._renewed = 0.0
        self._task: asyncio.Task[None] | None = None
        self.matches: dict[str, tuple[UserId, UserId]] = {}
        """Match session id -> (the party here, its peer)."""
        self.end_match: EndMatch | None = None
        """Ends a match (the node's queue); None: no queue on this node."""

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="call-lease")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await stop_task(task)

    def hold(self, call_id: str, caller: UserId, callee: UserId) -> None:
        self.held[call_id] = (caller, callee)

    def drop(self, call_id: str) -> None:
        self.held.pop(call_id, None)
        self._lost.pop(call_id, None)

    async def hold_match(self, session_id: str, here: UserId, peer: UserId, media: str) -> None:
        """A match found (or rejoined) for a party here: its node is written for the peer's node to
        watch, and the match's media for a party that comes back on another node."""
        self.matches[session_id] = (here, peer)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(match_nodes(session_id), mapping={here: self.node_id, MEDIA_FIELD: media})
            pipe.expire(match_nodes(session_id), MATCH_NODES_TTL_S)
            await pipe.execute()

    def drop_match(self, session_id: str) -> None:
        self.matches.pop(session_id, None)
        self._lost.pop(session_id, None)

    def _unseen_for(self, key: str, unseen: bool) -> float:
        """How long the node of ``key`` (a call or match) has been out of the registry (0: it is in)."""
        if not unseen:
            self._lost.pop(key, None)
            return 0.0
        now = time.monotonic()
        return now - self._lost.setdefault(key, now)

    async def alive(self, staying: bool = False) -> set[NodeId] | None:
        """The registered nodes (this one included), or None on a lone node; ``staying``: only those
        not draining (a draining node's parties are on their way to another)."""
        if self._registry is None:
            return None
        return {NodeId(e.id) for e in await self._registry.nodes() if not (staying and e.draining)} | {self.node_id}

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._tick_s)
            try:
                await self.tick()
            except aioredis.RedisError as exc:  # the next tick tries again; the lease outlives a few
                log.warning("call lease tick failed", extra={"error": str(exc)})
            except Exception:
                log.exception("call lease tick failed")

    async def tick(self) -> None:
        """Renews the leases when due; ends the calls whose lost party did not come back in time, and
        the matches whose peer's node is gone."""
        calls = list(self.held.items())
        if not calls and not self.matches:
            return
        alive = await self.alive()  # the registry, read once a tick for the matches and the calls
        await self._matches(alive)
        if not calls:
            return
        renew = time.monotonic() - self._renewed >= REFRESH_S
        async with self._redis.pipeline(transaction=False) as pipe:
            for call_id, (caller, callee) in calls:
                pipe.hmget(call(call_id), ["state", "caller_node", "callee_node", "meter_node"])
                if renew:
                    pipe.expire(call(call_id), LEASE_S)
                    pipe.expire(user_call(caller), LEASE_S)  # they name this call while it is active
                    pipe.expire(user_call(callee), LEASE_S)
            answers = await pipe.execute()
        if renew:
            self._renewed = time.monotonic()
        step = 4 if renew else 1
        for (call_id, _), fields in zip(calls, answers[::step], strict=True):
            await self._check(call_id, [None if f is None else text(f) for f in fields], alive)

    async def _matches(self, alive: set[NodeId] | None) -> None:
        matches = list(self.matches.items())
        if not matches or self.end_match is None:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for session_id, (here, peer) in matches:
                pipe.get(match_pair(here))
                pipe.hget(match_nodes(session_id), peer)
            answers = await pipe.execute()
        for (session_id, (here, peer)), pair, node in zip(matches, answers[::2], answers[1::2], strict=True):
            if pair is None or text(pair) != session_id:  # ended (the party here left it or pressed next)
                self.drop_match(session_id)
                continue
            unseen = alive is not None and node is not None and text(node) not in alive
            gone_for = self._unseen_for(session_id, unseen)  # 0 again once the peer rejoined on a live node
            if unseen and gone_for >= max(self.rejoin_s, self.unseen_s):
                log.info("match ended: the peer's node died and the peer did not come back",
                         extra={"session": session_id})
                self.drop_match(session_id)
                await self.end_match(here, peer, NODE_LOST)

    async def _check(self, call_id: str, fields: list[str | None], alive: set[NodeId] | None) -> None:
        state, caller_node, callee_node, meter_node = fields
        if state != "active":  # ended (its call.ended reaches the parties), or expired: no lease to keep
            self.drop(call_id)
            return
        if alive is None:
            return
        if meter_node is not None and meter_node not in alive:
            if self._unseen_for(call_id, True) >= min(self.unseen_s, self.rejoin_s):
                log.info("paid call ended: its meter's node is gone", extra={"call": call_id, "node": meter_node})
                self._lost.pop(call_id, None)
                await self._end(call_id, NODE_LOST)
            return
        unseen = any(node is not None and node not in alive for node in (caller_node, callee_node))  # None: older
        gone_for = self._unseen_for(call_id, unseen)
        if unseen and gone_for >= max(self.rejoin_s, self.unseen_s):
            log.info("call ended: a party's node died and the party did not come back", extra={"call": call_id})
            self._lost.pop(call_id, None)
            await self._end(call_id, NODE_LOST)
