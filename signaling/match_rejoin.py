"""``call.rejoin`` of a random-chat match: a party whose node died or drained takes its match on here.

A match lives in the matchmaker's records (``keyspace.match_session``: its two users; both users'
``keyspace.match_pair`` keys name it while it is live) and in ``keyspace.match_nodes`` (each party's
node, and the match's media). A party that comes back on a new session sends ``call.rejoin`` with the
match's session id as ``call_id``, as for a call: this node checks that the match is still live (both
pair keys name it; the matchmaker's keys are only read here, never written), that no block was made
meanwhile, writes itself as the party's node and takes the match on (the relay, the lease's watch, the
SFU room and, the parties now on two nodes, the cascade), and tells the other party ``call.rejoined``.
The peer's node meanwhile gave the party ``node.call_rejoin_s`` (:mod:`signaling.call_lease`); a match
that was ended meanwhile (by the peer, by that window, by a block) is refused with ``conflict``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

from signaling.call_lease import MEDIA_FIELD, NODE_LOST, CallLease, EndMatch
from signaling.call_media import SFU, CallMedia
from signaling.errors import Conflict, NotFound
from signaling.hub import Hub
from signaling.relations import Relations
from signaling.session import Session
from switchboard.ids import UserId
from switchboard.keyspace import match_nodes, match_pair, match_session
from switchboard.redis_client import text

Enter = Callable[[UserId, str, UserId], None]
"""Opens the relay between a local user and its peer for a call or match id (the call book's)."""


class MatchRejoin:
    """Takes on, on this node, the match of a party that comes back from a lost or drained node."""

    def __init__(self, redis: aioredis.Redis, hub: Hub, media: CallMedia, lease: CallLease, relations: Relations,
                 part: EndMatch, enter: Enter) -> None:
        self._redis = redis
        self._hub = hub
        self._media = media
        self._lease = lease
        self._relations = relations
        self._part = part
        self._enter = enter

    async def rejoin(self, session: Session, sid: str) -> dict[str, Any]:
        me = session.user_id
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hmget(match_session(sid), ["a", "b"])
            pipe.hgetall(match_nodes(sid))
            (a, b), raw_nodes = await pipe.execute()
        if a is None or b is None or me not in (text(a), text(b)):
            raise NotFound(f"no call {sid!r} to rejoin")
        peer = UserId(text(b) if me == text(a) else text(a))
        pairs = await self._redis.mget([match_pair(me), match_pair(peer)])  # one slot: both carry {mm}
        if any(p is None or text(p) != sid for p in pairs):
            raise Conflict("the match has ended")
        if await self._relations.blocked(me, peer):  # a block made while the party was away
            await self._part(me, peer, "leave")
            raise NotFound(f"no call {sid!r} to rejoin")
        nodes = {text(k): text(v) for k, v in raw_nodes.items()}
        media = nodes.get(MEDIA_FIELD) or self._media.mode("match", bool(self._hub.sessions(peer)))
        far = nodes.get(peer)
        staying = await self._lease.alive(staying=True)
        if (media == SFU and self._media.span is None and far not in (None, self._hub.node_id)
                and staying is not None and far in staying):  # one SFU room cannot hold parties on two nodes
            await self._part(me, peer, NODE_LOST)
            raise Conflict("the match could not go on without the lost node: it ended")
        self._enter(me, sid, peer)
        await self._lease.hold_match(sid, me, peer, media)
        await self._media.user_left(me, "match", keep=sid)  # one match at a time
        self._media.started(sid, "match", (me, peer), media)
        await self._hub.deliver(peer, {"type": "call.rejoined", "call_id": sid, "user_id": me})
        return {"call_id": sid, "kind": "match", "peer": peer, "media": media}
