"""Revocation of live tokens: one epoch per account in Redis (``keyspace.token_epoch``).

Tokens carry their issue second (``iat``). Revoking sets the epoch to the *next* whole second, so
every token issued up to and including this second is dead (``iat < epoch``) on every door of the
API and of the nodes, and tells the nodes on ``keyspace.SANCTIONS_CHANNEL`` so they end the
account's sockets at once. Tokens minted afterwards must carry ``iat >= epoch``: API access tokens
are minted with the epoch as their floor, and :meth:`Revocations.revoke` returns only once the epoch
second has begun, so anything a client gets after the revoking answer (room and socket tokens too)
is alive.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from control_api.errors import Unavailable
from switchboard.keyspace import SANCTIONS_CHANNEL, banned, premium_tier, token_epoch
from switchboard.redis_client import atomic_pipeline, mget

log = logging.getLogger("switchboard.api.revocation")


@dataclass(frozen=True)
class Standing:
    """An account's live marks in Redis, read together on every authenticated request."""

    epoch: int
    """Tokens issued before this second are dead (0: never revoked)."""
    banned: bool
    """The ban mark (``keyspace.banned``) is set: a ban is in force."""
    premium: bool | None
    """The premium tier mark (``keyspace.premium_tier``); None: never marked."""


def _int(raw: bytes | str | None) -> int:
    try:
        return int(raw) if raw else 0
    except ValueError:
        return 0


def _retrieve(future: asyncio.Future[Standing]) -> None:
    """Marks a failed read as seen when the request that asked went away."""
    if not future.cancelled():
        future.exception()


class Revocations:
    """Reads and moves the accounts' token epochs."""

    def __init__(self, redis: Redis, *, reads: Redis | None = None) -> None:
        self._redis = redis
        self._reader = reads if reads is not None else redis
        """The standing's MGET (the API's hot client, :mod:`switchboard.resp`); writes use ``redis``."""
        self._batch: dict[str, asyncio.Future[Standing]] | None = None
        """Accounts asked for in this loop pass, sent together at its end."""
        self._reads: set[asyncio.Task[None]] = set()

    async def epoch(self, user_id: uuid.UUID) -> int:
        """The account's epoch (0: never revoked). Redis unreachable: Unavailable (503)."""
        return (await self.standing(user_id)).epoch

    async def standing(self, user_id: uuid.UUID) -> Standing:
        """The account's epoch, ban mark and premium mark, never cached: a revocation, a ban or a
        premium change acts on the very next request. The requests of one loop pass share one MGET
        (sent once they have all asked, so each read still follows its request's arrival): under
        load the round trip's client cost is paid once per pass, not once per request. Redis
        unreachable: Unavailable (503), never a token accepted unchecked."""
        user = str(user_id)
        loop = asyncio.get_running_loop()
        batch = self._batch
        if batch is None:
            batch = self._batch = {}
            loop.call_soon(self._send, batch)
        future = batch.get(user)
        if future is None:
            future = batch[user] = loop.create_future()
            future.add_done_callback(_retrieve)
        # Shielded: a request that goes away does not cancel the answer others wait for.
        return await asyncio.shield(future)

    def _send(self, batch: dict[str, asyncio.Future[Standing]]) -> None:
        self._batch = None
        task = asyncio.get_running_loop().create_task(self._read(batch))
        self._reads.add(task)
        task.add_done_callback(self._reads.discard)

    async def _read(self, batch: dict[str, asyncio.Future[Standing]]) -> None:
        users = list(batch)
        keys = [key for user in users for key in (token_epoch(user), banned(user), premium_tier(user))]
        try:
            values = await mget(self._reader, keys)  # on a cluster: one MGET per user's slot, sent together
        except (RedisError, OSError):
            log.warning("token epoch unreadable", exc_info=True)
            for future in batch.values():
                if not future.done():
                    future.set_exception(Unavailable("sign-in state is unreachable; retry shortly", 1))
            return
        except BaseException:  # cancelled (the app stopping): nobody is left waiting
            for future in batch.values():
                if not future.done():
                    future.set_exception(Unavailable("the server is stopping", 1))
            raise
        for i, user in enumerate(users):
            raw_epoch, mark, tier = values[3 * i: 3 * i + 3]
            if not batch[user].done():
                batch[user].set_result(Standing(_int(raw_epoch), mark is not None,
                                                None if tier is None else tier in (b"1", "1")))

    async def revoke(self, user_id: uuid.UUID, *, wait: bool = True) -> int:
        """Kills every token of the account issued until now and publishes ``revoke``; returns the
        epoch. With ``wait`` (the account lives on: logout everywhere, password reset or change) it
        returns once the epoch second has begun (under a second), so the caller's next login is alive.
        The durable change is already committed: a Redis failure is logged, not raised."""
        epoch = int(time.time()) + 1
        await self._push(user_id, epoch, "revoke")
        if wait:
            await asyncio.sleep(max(0.0, epoch - time.time()))
        return epoch

    async def ban(self, user_id: uuid.UUID, duration_s: int | None) -> int:
        """A ban: the Redis ban mark (nodes refuse the user's sockets while it lasts), the epoch, and
        ``ban`` to every node (which ends the user's sessions, 4003). Returns the epoch."""
        epoch = int(time.time()) + 1
        await self._push(user_id, epoch, "ban", ban_s=duration_s)
        return epoch

    async def _push(self, user_id: uuid.UUID, epoch: int, kind: str, *, ban_s: int | None = None) -> None:
        user = str(user_id)
        try:
            async with atomic_pipeline(self._redis) as pipe:  # both keys in the user's slot
                if kind == "ban":
                    pipe.set(banned(user), "1", ex=ban_s)
                pipe.set(token_epoch(user), str(epoch))
                await pipe.execute()
            # Once the marks are written (on a cluster a notice and a key travel apart): a node that
            # ends the user's sockets on this notice refuses the reconnecting tokens.
            await self._redis.publish(SANCTIONS_CHANNEL, json.dumps({"user": user, "kind": kind}))
        except RedisError:
            log.error("a %s could not be pushed to Redis", kind, extra={"account": user}, exc_info=True)
