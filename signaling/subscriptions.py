"""The node's per-user Redis state, written in batches: channel subscriptions and presence keys.

A user arriving on the node needs ``SUBSCRIBE user:{id}`` and a presence key; one command each per
user made 10,000 sockets arriving together cost the event loop ~20,000 Redis round trips (and
redis-py's per-command overhead). Here every join and leave waits in one ordered queue; a single
task takes whatever queued up while the previous batch was in flight and sends it as one
SUBSCRIBE (or UNSUBSCRIBE) with many channels plus one script call for the presence keys. A caller
awaits its batch, so a user's socket is told ``hello`` only once its channel is subscribed. The same
script checks each arriving user's ban mark (``keyspace.banned``) and token epoch
(``keyspace.token_epoch``: a token issued before it is revoked), so refusing banned users and
revoked tokens costs no round trip of its own. The arriving users' mutes (``keyspace.muted``) are read
in the same batch (one MGET), not with a GET per connect.

On Redis Cluster a script may touch one slot only: a user's three keys share the user's hash tag, so
a batch is split into one script call per slot (sent together), instead of one call per batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.crc import key_slot

from switchboard.ids import NodeId, UserId
from switchboard.keyspace import banned, muted, presence, token_epoch, user_channel
from switchboard.redis_client import is_cluster, mget
from switchboard.tasks import stop_task

log = logging.getLogger("switchboard.signaling")

PRESENCE_LUA = (Path(__file__).resolve().parent / "lua" / "presence_set.lua").read_text()
CHUNK = 500
"""Users per Redis command: bounds one command's size and the time the loop spends building it."""


class Subscriptions:
    """Batches user joins and leaves for one node. Owned by the hub, which starts and closes it."""

    def __init__(self, redis: aioredis.Redis, pubsub: PubSub, node_id: NodeId, presence_ttl_s: int) -> None:
        self._redis = redis
        self._pubsub = pubsub
        self._node_id = node_id
        self._ttl_s = presence_ttl_s
        self._script = redis.register_script(PRESENCE_LUA)
        self._cluster = is_cluster(redis)
        self._ops: list[tuple[bool, UserId, int, bool]] = []
        """Queued (join?, user, token iat, shown: presence written) in arrival order."""
        self._done: asyncio.Future[tuple[dict[UserId, str], dict[UserId, bytes]]] | None = None
        """Resolved when the queued ops are written: the refused users among the joins (and why), and
        the raw mute value of the muted ones."""
        self._wake = asyncio.Event()
        self.connected = asyncio.Event()
        """Set by the hub once the pubsub holds its connection. Until then batches wait: a SUBSCRIBE
        sent while the hub's first one is still connecting made redis-py open a second connection
        and read only that one, orphaning the node and sanctions channels (found by the ban test)."""
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="hub-subscriptions")

    async def join(self, user: UserId, iat: int, shown: bool = True) -> tuple[str | None, bytes | None]:
        """Subscribes the user's channel and writes their presence (with the next batch; not when
        ``shown`` is False: a hidden moderator's session, checked all the same). Returns
        why the user is refused, or None (``banned``, or ``revoked`` when a token issued at ``iat``
        is older than the user's token epoch: then no presence is written, and the caller refuses
        the socket and leaves again), and the user's ``keyspace.muted`` value (None: not muted, or
        unreadable)."""
        refused, mutes = await self._enqueue(True, user, iat, shown)
        return refused.get(user), mutes.get(user)

    async def leave(self, user: UserId) -> None:
        """Unsubscribes the user's channel and deletes their presence (with the next batch)."""
        await self._enqueue(False, user, 0, False)

    async def refresh(self, users: list[UserId]) -> None:
        """Rewrites the presence keys (TTL) of ``users``, in chunks, yielding to the loop between them."""
        for start in range(0, len(users), CHUNK):
            await self._set_presence(users[start:start + CHUNK], ())

    async def _set_presence(self, users: Sequence[UserId], iats: Sequence[int],
                            shown: Sequence[bool] = ()) -> list[tuple[UserId, str]]:
        """Runs presence_set.lua for ``users`` (with their token ``iats``: the ban and epoch check, and
        whether each one's presence is written; none: a refresh). Returns the refused users and why."""
        groups: list[list[int]] = [list(range(len(users)))]
        if self._cluster:
            slots: dict[int, list[int]] = {}
            for i, u in enumerate(users):
                slots.setdefault(key_slot(presence(u).encode()), []).append(i)
            groups = list(slots.values())

        async def one(group: list[int]) -> list[tuple[UserId, str]]:
            some = [users[i] for i in group]
            keys = [presence(u) for u in some]
            args: list[Any] = [self._node_id, self._ttl_s]
            if iats:
                keys += [banned(u) for u in some] + [token_epoch(u) for u in some]
                args += [len(some), *(iats[i] for i in group), *("1" if shown[i] else "0" for i in group)]
            out = await self._script(keys=keys, args=args)
            return [(some[int(out[i]) - 1], out[i + 1].decode() if isinstance(out[i + 1], bytes) else str(out[i + 1]))
                    for i in range(0, len(out), 2)]

        if len(groups) == 1:
            return await one(groups[0])
        return [r for part in await asyncio.gather(*(one(g) for g in groups)) for r in part]

    async def _enqueue(self, join: bool, user: UserId, iat: int,
                       shown: bool) -> tuple[dict[UserId, str], dict[UserId, bytes]]:
        if self._done is None:
            self._done = asyncio.get_running_loop().create_future()
        done = self._done
        self._ops.append((join, user, iat, shown))
        self._wake.set()
        return await asyncio.shield(done)  # a cancelled caller must not cancel the batch others wait for

    async def _run(self) -> None:
        await self.connected.wait()
        while True:
            await self._wake.wait()
            self._wake.clear()
            ops, done = self._ops, self._done
            self._ops, self._done = [], None
            if done is None:
                continue
            try:
                refused = await self._write(ops)
            except BaseException as exc:
                if not done.done():
                    done.set_exception(exc if isinstance(exc, Exception) else ConnectionError("node stopping"))
                    done.exception()  # retrieved: callers that went away must not log "never retrieved"
                if not isinstance(exc, Exception):
                    raise
            else:
                if not done.done():
                    done.set_result(refused)

    async def _write(self, ops: list[tuple[bool, UserId, int, bool]]) -> tuple[dict[UserId, str], dict[UserId, bytes]]:
        """Runs of joins and of leaves, in order (a join then a leave of one user stays in that order).
        Returns the refused users among the joins, with why (``banned`` or ``revoked``), and the
        mute values of the muted ones."""
        refused: dict[UserId, str] = {}
        mutes: dict[UserId, bytes] = {}
        start = 0
        while start < len(ops):
            kind, end = ops[start][0], start
            while end < len(ops) and ops[end][0] == kind and end - start < CHUNK:
                end += 1
            users = [user for _, user, _, _ in ops[start:end]]
            channels = [user_channel(u) for u in users]
            if kind:
                await self._pubsub.subscribe(*channels)
                checked, values = await asyncio.gather(
                    self._set_presence(users, [iat for _, _, iat, _ in ops[start:end]],
                                       [shown for _, _, _, shown in ops[start:end]]), self._mutes(users))
                for user, why in checked:
                    refused[user] = why
                mutes.update((u, v) for u, v in zip(users, values, strict=True) if v is not None)
            else:
                await self._pubsub.unsubscribe(*channels)
                await self._redis.delete(*(presence(u) for u in users))
            start = end
        return refused, mutes

    async def _mutes(self, users: list[UserId]) -> list[bytes | None]:
        """The users' ``keyspace.muted`` values. Unreadable: nobody is muted here until the next
        notice (the API's chat routes still refuse them from Postgres); the joins go on."""
        try:
            return await mget(self._redis, [muted(u) for u in users])
        except (aioredis.RedisError, OSError) as exc:
            log.warning("mutes unreadable at connect", extra={"users": len(users), "error": str(exc)})
            return [None] * len(users)

    async def close(self) -> None:
        """Stops the batching task; joins still waiting fail with ConnectionError. Safe to call twice."""
        if self._task is not None:
            await stop_task(self._task)
        if self._done is not None and not self._done.done():
            self._done.set_exception(ConnectionError("node stopping"))
            self._done.exception()
