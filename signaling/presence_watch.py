"""Pushed presence for friends: ``presence.watch`` answers now and sends ``presence.changed`` later.

A hidden moderator's session (a ``hidden`` grant) is no presence at all: the hub writes no presence
key for it and announces nothing (:class:`signaling.hub.Hub`), so such a moderator reads ``offline``.

A session names the users it wants to follow (a page's friend list); the reply is their status now,
like ``presence.query`` but with a third value for friends: ``in_call`` (a 1:1 call, ringing or
active, or a random-chat match). Later changes are pushed by the node of the user who changed: when
a user's first session arrives on a node (``online``), their last one leaves (``offline``), or one of
their calls or matches starts or ends (``in_call`` / ``online``), that node reads the user's friends
(``keyspace.friends``: an accepted follow either way), keeps those the user may be seen by
(:meth:`Relations.visible`: in both sets and no block either way, read at push time) and delivers
``presence.changed`` to each through the hub (Redis ``user:{id}`` for friends on other nodes). The
receiving node hands it only to the sessions of that friend that watch the user. Nobody else ever
gets a push, and a stranger, a pending request or a blocked user still reads ``offline`` from the
reply. A block (the ``sanctions`` channel) shows each side's
watching sessions the other as ``offline`` at once. Changes queue and one task pushes them: the
friend sets of everyone who changed meanwhile are read in one pipeline (a connect burst costs a
round trip per batch, not a task and a round trip per socket).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import redis.asyncio as aioredis

from signaling.hub import Hub
from signaling.relations import Relations
from signaling.session import Session
from switchboard.ids import UserId
from switchboard.keyspace import friends, match_pair, presence, user_call
from switchboard.redis_client import mget
from switchboard.tasks import stop_tasks

log = logging.getLogger("switchboard.signaling")

CHANGED = "presence.changed"
BUSY = {"call.accepted": "in_call", "match.found": "in_call", "call.ended": "online", "match.ended": "online"}
"""Messages for a local user that change what their friends see."""


class PresenceWatch:
    """The ``presence.watch`` door and the pushes; one per node, registered on the hub."""

    def __init__(self, redis: aioredis.Redis, hub: Hub, relations: Relations) -> None:
        self._redis = redis
        self._hub = hub
        self._relations = relations
        self._tasks: set[asyncio.Task[None]] = set()
        self._changes: list[tuple[UserId, str]] = []
        """(user, status) not yet pushed, in order; the task in ``_tasks`` takes them in batches."""
        self._pushing = False
        hub.on_presence(self._arrived_or_left)
        hub.on_block(self._blocked)
        hub.observe(self._observe, frozenset(BUSY))
        hub.route(CHANGED, self._deliver)

    async def close(self) -> None:
        await stop_tasks(list(self._tasks))
        self._tasks.clear()

    async def watch(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        """Replaces the session's watch list; replies ``{"presence": {user: status}}``."""
        users = list(dict.fromkeys(body["users"]))
        session.watching = frozenset(users)
        return {"presence": await self.status(session.user_id, users)}

    async def status(self, me: UserId, users: list[str]) -> dict[str, str]:
        """``online``, ``in_call`` or ``offline`` for each user; hidden users are ``offline``."""
        visible = await self._relations.visible(me, users)
        out = dict.fromkeys(users, "offline")
        if not visible:
            return out
        # Three reads at once (redis_client.mget: split by slot on a Redis Cluster).
        here, calls, pairs = await asyncio.gather(mget(self._redis, [presence(u) for u in visible]),
                                                  mget(self._redis, [user_call(u) for u in visible]),
                                                  mget(self._redis, [match_pair(u) for u in visible]))
        for u, on, busy, paired in zip(visible, here, calls, pairs, strict=True):
            if on is not None:
                out[u] = "in_call" if busy is not None or paired is not None else "online"
        return out

    def _arrived_or_left(self, user: UserId, online: bool) -> None:
        self._announce(user, "online" if online else "offline")

    async def _observe(self, user: UserId, message: dict[str, Any]) -> None:
        status = BUSY.get(str(message.get("type")))
        if status is not None:
            self._announce(user, status)

    def _announce(self, user: UserId, status: str) -> None:
        self._changes.append((user, status))
        if not self._pushing:
            self._pushing = True
            task = asyncio.get_running_loop().create_task(self._push_changes(), name="presence-push")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _push_changes(self) -> None:
        try:
            while self._changes:
                batch, self._changes = self._changes, []
                users = list(dict.fromkeys(user for user, _ in batch))
                try:
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for user in users:
                            pipe.smembers(friends(user))
                        found = dict(zip(users, await pipe.execute(), strict=True))
                except aioredis.RedisError as exc:  # missed pushes: the pages' next watch reads the truth
                    log.warning("presence push failed", extra={"users": len(users), "error": str(exc)})
                    continue
                await asyncio.gather(*(self._push(user, status, [m.decode() if isinstance(m, bytes) else str(m)
                                                                 for m in found[user]])
                                       for user, status in batch if found[user]))
        finally:
            self._pushing = False

    async def _push(self, user: UserId, status: str, members: list[str]) -> None:
        try:
            message = {"type": CHANGED, "user": user, "status": status}
            for friend in await self._relations.visible(user, members):
                if friend != user:
                    await self._hub.deliver(UserId(friend), message)
        except aioredis.RedisError as exc:  # a missed push: the page's next watch reads the truth
            log.warning("presence push failed", extra={"user": user, "error": str(exc)})

    async def _blocked(self, blocker: UserId, blocked: UserId) -> None:
        """A new block: each side's watching sessions here see the other go ``offline`` (what a
        hidden user always reads), and get no more pushes (the senders check the block)."""
        for me, other in ((blocker, blocked), (blocked, blocker)):
            for session in self._hub.sessions(me):
                if session.watching and other in session.watching:
                    session.send({"type": CHANGED, "user": other, "status": "offline"})

    def _deliver(self, user: UserId, message: dict[str, Any]) -> None:
        """A ``presence.changed`` for local ``user``: to the sessions of theirs that watch its subject."""
        subject = message.get("user")
        for session in self._hub.sessions(user):
            if session.watching and subject in session.watching:
                session.send(message)
