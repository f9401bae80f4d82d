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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from signaling.call_media import CallMedia
from signaling.call_meter import CallMeter
from signaling.errors import BadMessage, Busy, Conflict, NotFound
from signaling.hub import Hub
from signaling.relations import Relations
from signaling.session import Session
from switchboard.events import EventType, SocialEvent, encode
from switchboard.ids import UserId, new_id
from switchboard.keyspace import EVENTS_STREAM, call, text, user_call
from switchboard.paid import call_meter
from switchboard.tasks import stop_tasks

log = logging.getLogger("switchboard.signaling")

CALL_KEY_TTL_S = 6 * 3600
"""A call's keys expire after this long even if nobody ends it (a node died mid-call)."""
ENDED_KEEP_S = 60
"""An ended call's hash is kept this long (late accepts get ``conflict``, not ``not_found``)."""

TRANSITION_LUA = (Path(__file__).resolve().parent / "lua" / "call_transition.lua").read_text()
"""The call state machine's one script, read once at import (shipped as package data)."""

RELAYED = ("call.offer", "call.answer", "call.ice", "call.chat", "call.like", "call.follow_request")
DURABLE = {"call.like": EventType.LIKE, "call.follow_request": EventType.FOLLOW_REQUEST}
"""Relayed types that are also facts for the control API (events stream ``type``)."""


class CallBook:
    """Call flows for the users of one node."""

    def __init__(self, redis: aioredis.Redis, hub: Hub, ring_timeout_s: float, media: CallMedia,
                 meter: CallMeter | None = None) -> None:
        self._redis = redis
        self._hub = hub
        self.media = media
        self.meter = meter or CallMeter(redis, 60.0, 5.0, ring_timeout_s)
        """Paid calls: the minutes' holds and the end when the caller's credits run out."""
        self.meter.on_exhausted(self._exhausted)
        """The calls' SFU rooms (``node.call_media = "sfu"``) and the moderators' taps on them."""
        self._ring_timeout_s = ring_timeout_s
        self._move = redis.register_script(TRANSITION_LUA)
        self.relations = Relations(redis)
        """Blocks and friends, as the control API mirrors them into Redis."""
        self._in_call: dict[UserId, dict[str, UserId]] = {}
        """Local user -> {call or match session id -> peer}: who the relay may reach."""
        self._timers: dict[str, asyncio.Task[None]] = {}
        hub.observe(self._observe, frozenset({"call.incoming", "call.accepted", "call.ended", "match.found",
                                              "match.ended"}))

    async def close(self) -> None:
        await self.meter.close()
        await stop_tasks(list(self._timers.values()))
        self._timers.clear()

    def peer(self, user_id: UserId, call_id: str) -> UserId | None:
        return self._in_call.get(user_id, {}).get(call_id)

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
            self.media.started(str(message["call_id"]), "call", (caller, callee), str(message.get("media", "p2p")))
        elif kind == "call.ended":
            self.meter.stop(str(message.get("call_id")))
            self._forget(user_id, str(message.get("call_id")))
            self._stop_timer(str(message.get("call_id")))
            await self.media.ended(str(message.get("call_id")))
        elif kind == "match.found":
            peer = message.get("peer")
            if isinstance(peer, dict) and peer.get("user_id"):
                session_id, other = str(message.get("session_id")), UserId(str(peer["user_id"]))
                self._in_call.setdefault(user_id, {})[session_id] = other
                await self.media.user_left(user_id, "match", keep=session_id)  # one match at a time
                # The matchmaker does not know where media flows; the node stamps it before the socket sees it.
                message["media"] = self.media.mode("match", bool(self._hub.sessions(other)))
                self.media.started(session_id, "match", (user_id, other), message["media"])
        elif kind == "match.ended":
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
        if not await self._redis.set(user_call(me), call_id, nx=True, ex=CALL_KEY_TTL_S):
            raise Busy("you are already in a call: hang up first")
        if not await self._redis.set(user_call(to), call_id, nx=True, ex=CALL_KEY_TTL_S):
            await self._redis.delete(user_call(me))
            raise Busy(f"user {to} is in another call")
        await self._redis.hset(call(call_id), mapping={"caller": me, "callee": to, "state": "ringing",
                                                       "at_ms": int(time.time() * 1000)})
        await self._redis.expire(call(call_id), CALL_KEY_TTL_S)
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
        price = await self._redis.hget(call_meter(call_id), "price")
        if price is not None and int(price) > 0:
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
                for state in ("active", "ringing"):
                    if await self._end(call_id, caller, callee, state, "left", user_id):
                        break
        self._in_call.pop(user_id, None)
        await self.media.user_left(user_id)

    async def session_gone(self, session: Session) -> None:
        """Any session that ended for good (a moderator's too): its call-room peers and taps close."""
        await self.media.session_gone(session)
