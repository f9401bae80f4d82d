"""1:1 P2P calls (and random-chat matches, which run as calls): invite to hangup, and the relay.

The authoritative state of a call is its Redis hash (``keyspace.call``), moved only by
``lua/call_transition.lua``; ``keyspace.user_call`` makes a second call ``busy``. Each node also
keeps, for its own users, the calls they are *in* (accepted calls and matches): offer/answer/ICE,
chat, like and follow-request go only to that peer, and the relay needs no Redis read.

Blocks (either way) hold at each door: an invite between a blocked pair is refused exactly as an
invite to an offline user is (``not_found``), an accept of such a call ends it, and a block made
during a call ends it at once (:meth:`CallBook.part`, on the ``block`` sanctions message), which
also ends the relay between the two. Unverified accounts may not call (the dispatcher's door).

A call to a creator who set a price per minute is metered (:mod:`signaling.call_meter`): its first
minute is held before it rings, and it ends by itself (``insufficient_credits``) when the caller's
credits run out.

A call outlives the node of either party (docs/scaling.md, "Node loss"): the call hash names each
party's node, and a party whose node died comes back on a live node with ``call.rejoin``: the call
goes on there (through that node's SFU when its media is ``sfu``, pulled across nodes by the cascade
when the parties are now on two). A party that does not come back within ``node.call_rejoin_s``, a
paid call whose meter's node died, and a call whose parties both vanish end cleanly
(:mod:`signaling.call_lease`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from signaling.call_lease import LEASE_S, NODE_LOST, CallLease
from signaling.call_media import SFU, CallMedia
from signaling.call_meter import CallMeter
from signaling.errors import BadMessage, Busy, Conflict, NotFound
from signaling.hub import Hub
from signaling.match_rejoin import MatchRejoin
from signaling.relations import Relations
from signaling.session import Session
from switchboard.events import EventType, SocialEvent, encode
from switchboard.ids import UserId, new_id
from switchboard.keyspace import EVENTS_STREAM, call, match_nodes, match_pair, user_call
from switchboard.paid import call_meter
from switchboard.redis_client import atomic_pipeline, text
from switchboard.registry import NodeRegistry
from switchboard.tasks import stop_tasks

log = logging.getLogger("switchboard.signaling")

ENDED_KEEP_S = 86400
"""An ended call's hash is kept this long: late accepts get ``conflict``, not ``not_found``, and its
parties may still report it (the control API reads its ``caller`` and ``callee``:
control_api/live_parties.py), as long as a random-chat session's record is kept."""

TRANSITION_LUA = (Path(__file__).resolve().parent / "lua" / "call_transition.lua").read_text()
"""The call state machine's one script, read once at import (shipped as package data)."""

RELAYED = ("call.offer", "call.answer", "call.ice", "call.chat", "call.like", "call.follow_request")
DURABLE = {"call.like": EventType.LIKE, "call.follow_request": EventType.FOLLOW_REQUEST}
"""Relayed types that are also facts for the control API (events stream ``type``)."""


class CallBook:
    """Call flows for the users of one node."""

    def __init__(self, redis: aioredis.Redis, hub: Hub, ring_timeout_s: float, media: CallMedia,
                 meter: CallMeter | None = None, registry: NodeRegistry | None = None,
                 rejoin_s: float = 15.0) -> None:
        self._redis = redis
        self._hub = hub
        self.media = media
        self.meter = meter or CallMeter(redis, 60.0, 5.0, ring_timeout_s)
        """Paid calls: the minutes' holds and the end when the caller's credits run out."""
        self.meter.on_exhausted(self._exhausted)
        self.lease = CallLease(redis, hub.node_id, registry, rejoin_s, self._exhausted)
        """The records of the calls held here, renewed; a far party whose node died, watched
        (``registry``: the node registry of a node of many; None on a lone node)."""
        """The calls' SFU rooms (``node.call_media = "sfu"``) and the moderators' taps on them."""
        self._ring_timeout_s = ring_timeout_s
        self._move = redis.register_script(TRANSITION_LUA)
        self.relations = Relations(redis)
        """Blocks and friends, as the control API mirrors them into Redis."""
        self._in_call: dict[UserId, dict[str, UserId]] = {}
        """Local user -> {call or match session id -> peer}: who the relay may reach."""
        self._timers: dict[str, asyncio.Task[None]] = {}
        self.draining: Callable[[], bool] = lambda: False
        """Whether the node is draining: its users were sent to another node and take their calls along."""
        self.rejoin_match: MatchRejoin | None = None
        """``call.rejoin`` of a random-chat match (a node with a queue: :mod:`signaling.match_rejoin`)."""
        hub.observe(self._observe, frozenset({"call.incoming", "call.accepted", "call.ended", "match.found",
                                              "match.ended"}))

    async def close(self) -> None:
        await self.lease.close()
        await self.meter.close()
        await stop_tasks(list(self._timers.values()))
        self._timers.clear()

    def peer(self, user_id: UserId, call_id: str) -> UserId | None:
        return self._in_call.get(user_id, {}).get(call_id)

    def enter(self, user_id: UserId, call_id: str, peer: UserId) -> None:
        """The relay between a local user and ``peer`` opens for ``call_id`` (a call or match taken on here)."""
        self._in_call.setdefault(user_id, {})[call_id] = peer

    # --- state seen by this node's users ---------------------------------------------------------

    async def _observe(self, user_id: UserId, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "call.incoming":
            await self._hub.deliver(UserId(str(message.get("from"))), {"type": "call.ringing",
                                                                       "call_id": message.get("call_id")})
        elif kind == "call.accepted":
            caller, callee = UserId(str(message.get("caller"))), UserId(str(message.get("callee")))
            self._in_call.setdefault(user_id, {})[str(message["call_id"])] = callee if user_id == caller else caller
            self._stop_timer(str(message["call_id"]))
            self.lease.hold(str(message["call_id"]), caller, callee)
            self.media.started(str(message["call_id"]), "call", (caller, callee), str(message.get("media", "p2p")))
        elif kind == "call.ended":
            self.meter.stop(str(message.get("call_id")))
            self.lease.drop(str(message.get("call_id")))
            self._forget(user_id, str(message.get("call_id")))
            self._stop_timer(str(message.get("call_id")))
            await self.media.ended(str(message.get("call_id")))
        elif kind == "match.found":
            peer = message.get("peer")
            if isinstance(peer, dict) and peer.get("user_id"):
                session_id, other = str(message.get("session_id")), UserId(str(peer["user_id"]))
                self._in_call.setdefault(user_id, {})[session_id] = other
                # The matchmaker does not know where media flows; the node stamps it before the socket sees it.
                message["media"] = self.media.mode("match", bool(self._hub.sessions(other)))
                await self.lease.hold_match(session_id, user_id, other, message["media"])
                await self.media.user_left(user_id, "match", keep=session_id)  # one match at a time
                self.media.started(session_id, "match", (user_id, other), message["media"])
        elif kind == "match.ended":
            self.lease.drop_match(str(message.get("session_id")))
            self._forget(user_id, str(message.get("session_id")))
            await self.media.ended(str(message.get("session_id")))

    def _forget(self, user_id: UserId, call_id: str) -> None:
        calls = self._in_call.get(user_id)
        if calls is not None:
            calls.pop(call_id, None)
            if not calls:
                del self._in_call[user_id]

    def _stop_timer(self, call_id: str) -> None:
        task = self._timers.pop(call_id, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    # --- flows ------------------------------------------------------------------------------------

    async def _parties(self, call_id: str) -> tuple[UserId, UserId]:
        fields = await self._redis.hmget(call(call_id), ["caller", "callee"])
        if fields[0] is None or fields[1] is None:
            raise NotFound(f"no call {call_id!r}")
        return UserId(text(fields[0])), UserId(text(fields[1]))

    async def _end(self, call_id: str, caller: UserId, callee: UserId, from_state: str, reason: str,
                   by: UserId | None) -> bool:
        moved = await self._move(keys=[call(call_id), user_call(caller), user_call(callee)],
                                 args=[from_state, "ended", call_id, ENDED_KEEP_S])
        if not moved:
            return False
        await self.meter.ended(call_id)
        ended = {"type": "call.ended", "call_id": call_id, "reason": reason, "by": by}
        await self._hub.deliver(caller, ended)
        await self._hub.deliver(callee, ended)
        if from_state == "ringing" and (reason in ("timeout", "cancelled") or (reason == "hangup" and by == caller)):
            # The callee missed it: the control API makes it a ``call_missed`` notification (not
            # across a block: it drops events between blocked users).
            fact = SocialEvent(EventType.CALL_MISSED, caller, callee, call_id, int(time.time() * 1000))
            try:
                await self._redis.xadd(EVENTS_STREAM, encode(fact))  # type: ignore[arg-type]
            except aioredis.RedisError as exc:
                log.warning("a missed call could not be recorded", extra={"call": call_id, "error": str(exc)})
        return True

    async def invite(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        me, to = session.user_id, UserId(body["to"])
        if to == me:
            raise BadMessage("you cannot call yourself")
        if await self.relations.blocked(me, to):  # first: a blocked pair never learns the other is busy
            raise NotFound(f"user {to} is offline")
        call_id = new_id("call_")
        # A ringing call's keys outlive its ring by the lease: the accept hands them to the lease, and a
        # caller's node killed while it rang leaves nothing behind for long.
        ttl = int(self._ring_timeout_s) + LEASE_S
        if not await self._redis.set(user_call(me), call_id, nx=True, ex=ttl):
            raise Busy("you are already in a call: hang up first")
        if not await self._redis.set(user_call(to), call_id, nx=True, ex=ttl):
            await self._redis.delete(user_call(me))
            raise Busy(f"user {to} is in another call")
        await self._redis.hset(call(call_id), mapping={"caller": me, "callee": to, "state": "ringing",
                                                       "at_ms": int(time.time() * 1000),
                                                       "caller_node": self._hub.node_id})
        await self._redis.expire(call(call_id), ttl)
        price = 0
        if await self.meter.price(to):
            try:
                price = await self.meter.open(call_id, me, to)  # minute 1 held before it rings
            except Exception:
                await self._move(keys=[call(call_id), user_call(me), user_call(to)],
                                 args=["ringing", "ended", call_id, ENDED_KEEP_S])
                raise
        incoming: dict[str, Any] = {"type": "call.incoming", "call_id": call_id, "from": me}
        if price:
            incoming.update(price_per_minute=price, minute_s=self.meter.minute_s)
        if not await self._hub.deliver(to, incoming):
            await self._end(call_id, me, to, "ringing", "offline", None)
            raise NotFound(f"user {to} is offline")
        self._timers[call_id] = asyncio.get_running_loop().create_task(self._ring_timeout(call_id, me, to))
        if price:
            return {"call_id": call_id, "price_per_minute": price, "minute_s": self.meter.minute_s}
        return {"call_id": call_id}

    async def _ring_timeout(self, call_id: str, caller: UserId, callee: UserId) -> None:
        await asyncio.sleep(self._ring_timeout_s)
        self._timers.pop(call_id, None)
        await self._end(call_id, caller, callee, "ringing", "timeout", None)

    async def accept(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        call_id = body["call_id"]
        caller, callee = await self._parties(call_id)
        if session.user_id != callee:
            raise NotFound(f"no call {call_id!r} to accept")
        if await self.relations.blocked(caller, callee):  # a block made while it rang
            await self._end(call_id, caller, callee, "ringing", "hangup", None)
            raise NotFound(f"no call {call_id!r} to accept")
        if not await self._move(keys=[call(call_id), user_call(caller), user_call(callee)],
                                args=["ringing", "active", call_id, ENDED_KEEP_S]):
            raise Conflict("the call is no longer ringing")
        accepted = {"type": "call.accepted", "call_id": call_id, "caller": caller, "callee": callee,
                    "media": self.media.mode("call", bool(self._hub.sessions(caller)))}
        await self._redis.hset(call(call_id), mapping={"callee_node": self._hub.node_id, "media": accepted["media"]})
        price = await self._redis.hget(call_meter(call_id), "price")
        if price is not None and int(price) > 0:
            await self._redis.hset(call(call_id), "meter_node", self._hub.node_id)
            await self.meter.started(call_id)  # paid time runs from the accept; this node meters it
            accepted.update(price_per_minute=int(price), minute_s=self.meter.minute_s)
        await self._hub.deliver(caller, accepted)
        await self._hub.deliver(callee, accepted)
        return {"call_id": call_id, "peer": caller, "media": accepted["media"]}

    async def _exhausted(self, call_id: str, reason: str) -> bool:
        """The caller's paid time ran out: the active call ends on both sides."""
        try:
            caller, callee = await self._parties(call_id)
        except NotFound:
            return False
        return await self._end(call_id, caller, callee, "active", reason, None)

    async def _finish(self, session: Session, body: Mapping[str, Any], who: str, states: tuple[str, ...],
                      reason: str) -> dict[str, Any]:
        call_id = body["call_id"]
        caller, callee = await self._parties(call_id)
        me = session.user_id
        if me not in (caller, callee) or (who == "caller" and me != caller) or (who == "callee" and me != callee):
            raise NotFound(f"no call {call_id!r} that you may end as {reason}")
        for state in states:
            if await self._end(call_id, caller, callee, state, reason, me):
                return {"call_id": call_id}
        raise Conflict(f"the call is not {' or '.join(states)}")

    async def decline(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self._finish(session, body, "callee", ("ringing",), "declined")

    async def cancel(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self._finish(session, body, "caller", ("ringing",), "cancelled")

    async def hangup(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self._finish(session, body, "either", ("active", "ringing"), "hangup")

    async def rejoin(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        """A party back on a new session (its node died or drained): its active call goes on here. A call
        that cannot go on (it was still ringing, its meter's node died, or it is ``sfu`` while the other
        party is on another node and no cascade joins them) ends for both with ``node_lost``."""
        call_id, me = str(body["call_id"]), session.user_id
        raw = await self._redis.hmget(call(call_id), ["caller", "callee", "state", "media", "caller_node",
                                                      "callee_node", "meter_node"])
        caller, callee, state, media, caller_node, callee_node, meter_node = (None if v is None else text(v)
                                                                              for v in raw)
        if caller is None and not session.grants.hidden and self.rejoin_match is not None:
            return await self.rejoin_match.rejoin(session, call_id)  # a random-chat match's session id
        if caller is None or callee is None or me not in (caller, callee) or session.grants.hidden:
            raise NotFound(f"no call {call_id!r} to rejoin")
        one, other = UserId(caller), UserId(callee)
        if state == "ringing":  # its ring timer died with the caller's node
            await self._end(call_id, one, other, "ringing", NODE_LOST, None)
        if state != "active":
            raise Conflict("the call has ended")
        if await self.relations.blocked(one, other):  # a block made while the party was away
            await self._end(call_id, one, other, "active", "hangup", None)
            raise NotFound(f"no call {call_id!r} to rejoin")
        far = callee_node if me == caller else caller_node
        alive, staying = await self.lease.alive(), await self.lease.alive(staying=True)

        def apart(far: str | None) -> bool:  # an sfu call with its parties on two nodes, no cascade between
            return (media == SFU and self.media.span is None and far not in (None, self._hub.node_id)
                    and staying is not None and far in staying)

        if (alive is not None and meter_node is not None and meter_node not in alive) or apart(far):
            await self._end(call_id, one, other, "active", NODE_LOST, None)
            raise Conflict("the call could not go on without the lost node: it ended")
        # This party's node written, then the far party's read: when both come back at the same time on
        # two nodes, the later read sees the other's node (never two rooms and no media between them).
        async with atomic_pipeline(self._redis) as pipe:
            pipe.hset(call(call_id), "caller_node" if me == caller else "callee_node", self._hub.node_id)
            pipe.hmget(call(call_id), ["callee_node" if me == caller else "caller_node", "state"])
            _, (now_far, now_state) = await pipe.execute()
        if now_state is None or text(now_state) != "active":
            # Ended meanwhile (a hangup, a block): its call.ended came already; no relay may open after it.
            raise Conflict("the call has ended")
        if apart(None if now_far is None else text(now_far)):
            await self._end(call_id, one, other, "active", NODE_LOST, None)
            raise Conflict("the call could not go on without the lost node: it ended")
        peer = other if me == caller else one
        self._in_call.setdefault(me, {})[call_id] = peer
        self.lease.hold(call_id, one, other)
        self.media.started(call_id, "call", (one, other), media or "p2p")
        await self._hub.deliver(peer, {"type": "call.rejoined", "call_id": call_id, "user_id": me})
        return {"call_id": call_id, "caller": one, "callee": other, "peer": peer, "media": media or "p2p"}

    async def relay(self, session: Session, kind: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """offer/answer/ice/chat/like/follow_request: to the peer of an accepted call or match only."""
        call_id = body["call_id"]
        peer = self.peer(session.user_id, call_id)
        if peer is None:
            raise NotFound(f"you are in no active call or match {call_id!r}")
        out = {"type": kind, **body, "from": session.user_id}
        if kind in DURABLE:
            # Rare and durable: worth a read of the block sets even if the block's notice was lost.
            if await self.relations.blocked(session.user_id, peer):
                raise NotFound(f"you are in no active call or match {call_id!r}")
            fact = SocialEvent(DURABLE[kind], session.user_id, peer, call_id, int(time.time() * 1000))
            await self._redis.xadd(EVENTS_STREAM, encode(fact))  # type: ignore[arg-type]
        await self._hub.deliver(peer, out)
        return {}

    async def part(self, blocker: UserId, blocked: UserId) -> bool:
        """A block was made: the call between the two (ringing or active), if any, ends now. Both
        get ``call.ended`` as if the blocker had hung up (``hangup``, ``by`` the blocker): the blocked
        user learns nothing a hangup would not tell. True when a call ended (on one node only: the
        state move is atomic)."""
        ids = await self._redis.mget([user_call(blocker), user_call(blocked)])
        if ids[0] is None or ids[0] != ids[1]:
            return False
        call_id = text(ids[0])
        try:
            caller, callee = await self._parties(call_id)
        except NotFound:
            return False
        for state in ("active", "ringing"):
            if await self._end(call_id, caller, callee, state, "hangup", blocker):
                return True
        return False

    async def user_gone(self, user_id: UserId) -> None:
        """The user's last session here ended: end the call they are in (ringing or active)."""
        raw = await self._redis.get(user_call(user_id))
        if raw is not None:
            call_id = text(raw)
            with contextlib.suppress(NotFound):
                caller, callee = await self._parties(call_id)
                node = await self._redis.hget(call(call_id), "caller_node" if user_id == caller else "callee_node")
                if (node is None or text(node) == self._hub.node_id) and not self.draining():
                    for state in ("active", "ringing"):
                        if await self._end(call_id, caller, callee, state, "left", user_id):
                            break
                elif not self._hub.sessions(callee if user_id == caller else caller):
                    # The user took the call to another node (``call.rejoin``), or was sent there by a drain
                    # and takes it along (else the lease of the other party's node ends it).
                    self.lease.drop(call_id)
        self._in_call.pop(user_id, None)
        await self.media.user_left(user_id)

    async def match_goes_on(self, user_id: UserId) -> bool:
        """Whether the user's live match outlives their last session here: the node drains (they were sent
        elsewhere and take it along) or they took it to another node already (``call.rejoin``)."""
        sid = await self._redis.get(match_pair(user_id))
        if sid is None:
            return False
        node = await self._redis.hget(match_nodes(text(sid)), user_id)
        return self.draining() or (node is not None and text(node) != self._hub.node_id)

    async def session_gone(self, session: Session) -> None:
        """Any session that ended for good (a moderator's too): its call-room peers and taps close."""
        await self.media.session_gone(session)
