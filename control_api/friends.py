"""The follow graph's accepted edges mirrored into Redis, for the nodes' presence doors.

A pair is "connected" when an accepted follow joins them, either way (one follows the other and that
one accepted, or both): exactly the people ``/space`` lists, who see each other's presence. A pending
or declined request, a stranger, or a block (which deletes the follows) is no connection. Nodes never
read Postgres: ``presence.query`` and ``presence.watch`` answer only for the caller's connections,
read from ``keyspace.friends(user)`` (symmetric). The social routes keep the mirror after each change
they commit (follow, accept, decline, unfollow, follower removal, block); :func:`rebuild` recomputes it
all from Postgres (for a deployment that predates it, or after a Redis loss), behind an admin route.
"""

from __future__ import annotations

import logging
import uuid

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from control_api.http import Call, Reply, Route
from control_api.models import Account
from control_api.sanctions import require_staff
from control_api.social_models import Follow
from switchboard.keyspace import friends
from switchboard.redis_client import atomic_pipeline

log = logging.getLogger("switchboard.api.friends")

ACCEPTED = "accepted"
BATCH = 1000
"""Pairs written per Redis pipeline during a rebuild."""


async def connected(session: AsyncSession, a: uuid.UUID, b: uuid.UUID) -> bool:
    """An accepted follow joins the two, either way, as this transaction sees it."""
    rows = list(await session.scalars(select(Follow.status).where(or_(
        and_(Follow.follower_id == a, Follow.followee_id == b),
        and_(Follow.follower_id == b, Follow.followee_id == a),
    ))))
    return ACCEPTED in rows


async def mirror(redis: Redis, a: uuid.UUID, b: uuid.UUID, linked: bool) -> None:
    """Writes the pair's connection both ways. Called after the commit; a Redis failure is logged
    (the change stands in Postgres, :func:`rebuild` repairs the mirror). On a Redis Cluster the two
    sets sit in their users' slots: written in one pipeline without MULTI (``redis_client.atomic_pipeline``)."""
    try:
        async with atomic_pipeline(redis) as pipe:
            if linked:
                pipe.sadd(friends(str(a)), str(b))
                pipe.sadd(friends(str(b)), str(a))
            else:
                pipe.srem(friends(str(a)), str(b))
                pipe.srem(friends(str(b)), str(a))
            await pipe.execute()
    except RedisError:
        log.error("friends mirror not written", extra={"a": str(a), "b": str(b)}, exc_info=True)


async def forget(redis: Redis, user: uuid.UUID) -> None:
    """The account is gone (deletion): it leaves every friend's set, and its own set goes."""
    key = friends(str(user))
    members = await redis.smembers(key)
    async with redis.pipeline(transaction=False) as pipe:
        for other in members:
            pipe.srem(friends(other.decode() if isinstance(other, bytes) else str(other)), str(user))
        pipe.delete(key)
        await pipe.execute()


async def rebuild(sessions: async_sessionmaker[AsyncSession], redis: Redis) -> int:
    """Recomputes every ``friends`` set from Postgres (live accounts, an accepted follow either way).
    Returns the number of connected pairs. Sets of users with no connection left are deleted."""
    follower, followee = aliased(Account), aliased(Account)
    stmt = (
        select(Follow.follower_id, Follow.followee_id)
        .join(follower, follower.id == Follow.follower_id)
        .join(followee, followee.id == Follow.followee_id)
        .where(Follow.status == ACCEPTED, follower.deleted_at.is_(None), followee.deleted_at.is_(None))
    )
    wanted: dict[str, set[str]] = {}
    async with sessions() as session:
        for a, b in (await session.execute(stmt)).all():
            wanted.setdefault(str(a), set()).add(str(b))
            wanted.setdefault(str(b), set()).add(str(a))
    stale = [key async for key in redis.scan_iter(match=friends("*"), count=BATCH)]
    for start in range(0, len(stale), BATCH):
        await redis.delete(*stale[start:start + BATCH])
    users = list(wanted)
    for start in range(0, len(users), BATCH):
        async with redis.pipeline(transaction=False) as pipe:
            for user in users[start:start + BATCH]:
                pipe.sadd(friends(user), *wanted[user])
            await pipe.execute()
    return sum(len(v) for v in wanted.values()) // 2  # each pair once, though both follows may exist


async def _rebuild(call: Call) -> Reply:
    async with call.services.sessions() as session:
        await require_staff(session, call.me.user_id)
    pairs = await rebuild(call.services.sessions, call.services.redis)
    return Reply({"pairs": pairs})


def routes() -> list[Route]:
    return [
        Route("POST", "/moderation/friends/rebuild", _rebuild,
              "Rebuild the Redis mirror of accepted follows (either way) that nodes read for presence (moderators)",
              "moderation"),
    ]
