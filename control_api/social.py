"""Social graph: follow requests (auto-accepted when both asked), likes with a counter, blocks
(written to Redis for the matchmaker and the nodes, both directions, and announced on the
sanctions channel so nodes end a call or match between the two at once), and search by pseudo.
Accepted follows (either way) are mirrored into Redis for the nodes' presence doors (control_api/friends.py)."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from control_api import friends, notifications, stats
from control_api.errors import NotFound, ValidationFailed
from control_api.graph import not_blocked, public_profile, visible_account
from control_api.http import Call, Reply, Route
from control_api.models import Account
from control_api.schema import Field, Schema
from control_api.social_models import Block, Follow, Like, Notification, Profile
from switchboard.keyspace import SANCTIONS_CHANNEL
from switchboard.keyspace import blocks as blocks_key
from switchboard.keyspace import friends as friends_key
from switchboard.redis_client import atomic_pipeline

log = logging.getLogger("switchboard.api.social")

PENDING, ACCEPTED = "pending", "accepted"


def _other(call: Call) -> uuid.UUID:
    other = call.params["user_id"]
    if other == call.me.user_id:
        raise ValidationFailed({"user_id": "must be another user"})
    return other


async def request_follow(session: AsyncSession, me: uuid.UUID, other: uuid.UUID) -> tuple[str, list[Notification]]:
    """``me`` asks to follow ``other``; when ``other`` already asked, both become accepted."""
    now = datetime.now(UTC)
    mine = await session.get(Follow, (me, other), with_for_update=True)
    if mine is not None:
        return mine.status, []
    theirs = await session.get(Follow, (other, me), with_for_update=True)
    if theirs is not None and theirs.status == PENDING:
        theirs.status, theirs.accepted_at = ACCEPTED, now
        session.add(Follow(follower_id=me, followee_id=other, status=ACCEPTED, created_at=now, accepted_at=now))
        return ACCEPTED, [
            notifications.add(session, other, "follow_accepted", {"user_id": str(me)}),
            notifications.add(session, me, "follow_accepted", {"user_id": str(other)}),
        ]
    session.add(Follow(follower_id=me, followee_id=other, status=PENDING, created_at=now))
    return PENDING, [notifications.add(session, other, "follow_request", {"user_id": str(me)})]


async def add_like(session: AsyncSession, me: uuid.UUID, other: uuid.UUID) -> tuple[int, list[Notification]]:
    """Records ``me`` liking ``other`` once; returns the new total and the notification made."""
    inserted = await session.scalar(
        insert(Like).values(liker_id=me, likee_id=other).on_conflict_do_nothing().returning(Like.liker_id)
    )
    await session.execute(
        insert(Profile).values(account_id=other, bio="", interests=[], total_likes=0).on_conflict_do_nothing()
    )
    await stats.track(session, me, "like")
    if inserted is None:
        total = await session.scalar(select(Profile.total_likes).where(Profile.account_id == other))
        return int(total or 0), []
    total = await session.scalar(
        update(Profile).where(Profile.account_id == other)
        .values(total_likes=Profile.total_likes + 1).returning(Profile.total_likes)
    )
    return int(total or 0), [notifications.add(session, other, "like", {"user_id": str(me)})]


async def _follow(call: Call) -> Reply:
    other = _other(call)
    async with call.services.sessions() as session, session.begin():
        await visible_account(session, call.me.user_id, other)
        status, notes = await request_follow(session, call.me.user_id, other)
        linked = await friends.connected(session, call.me.user_id, other)
    await friends.mirror(call.services.redis, call.me.user_id, other, linked)
    await notifications.push(call.services.realtime, notes)
    return Reply({"user_id": str(other), "status": status}, 201)


async def _unfollow(call: Call) -> Reply:
    async with call.services.sessions() as session, session.begin():
        await session.execute(delete(Follow).where(Follow.follower_id == call.me.user_id,
                                                   Follow.followee_id == call.params["user_id"]))
        linked = await friends.connected(session, call.me.user_id, call.params["user_id"])  # they may follow me
    await friends.mirror(call.services.redis, call.me.user_id, call.params["user_id"], linked)
    return Reply(None, 204)


async def _answer(call: Call, accept: bool) -> Reply:
    asker = call.params["user_id"]
    notes = []
    async with call.services.sessions() as session, session.begin():
        row = await session.get(Follow, (asker, call.me.user_id), with_for_update=True)
        if row is None or row.status != PENDING:
            raise NotFound("no pending follow request from this user")
        if accept:
            row.status, row.accepted_at = ACCEPTED, datetime.now(UTC)
            notes.append(notifications.add(session, asker, "follow_accepted", {"user_id": str(call.me.user_id)}))
        else:
            await session.delete(row)
        linked = await friends.connected(session, asker, call.me.user_id)
    await friends.mirror(call.services.redis, asker, call.me.user_id, linked)
    await notifications.push(call.services.realtime, notes)
    return Reply({"user_id": str(asker), "status": ACCEPTED if accept else "declined"})


async def _accept(call: Call) -> Reply:
    return await _answer(call, True)


async def _decline(call: Call) -> Reply:
    return await _answer(call, False)


async def _remove_follower(call: Call) -> Reply:
    async with call.services.sessions() as session, session.begin():
        await session.execute(delete(Follow).where(Follow.follower_id == call.params["user_id"],
                                                   Follow.followee_id == call.me.user_id))
        linked = await friends.connected(session, call.me.user_id, call.params["user_id"])  # I may follow them
    await friends.mirror(call.services.redis, call.me.user_id, call.params["user_id"], linked)
    return Reply(None, 204)


async def _people(call: Call, mine: Any, theirs: Any, status: str, order: Any) -> Reply:
    me = call.me.user_id
    stmt = (
        select(theirs, Profile, Follow.created_at, Follow.accepted_at)
        .select_from(Follow)
        .join(Account, Account.id == theirs)
        .outerjoin(Profile, Profile.account_id == theirs)
        .where(mine == me, Follow.status == status, Account.deleted_at.is_(None), not_blocked(me, theirs))
        .order_by(order.desc())
        .limit(call.query.get("limit", 50))
    )
    today = datetime.now(UTC).date()
    async with call.services.sessions() as session:
        rows = (await session.execute(stmt)).all()
    return Reply({"items": [
        {**public_profile(uid, profile, today), "since": (accepted or created).isoformat()}
        for uid, profile, created, accepted in rows
    ]})


async def _my_follows(call: Call) -> Reply:
    return await _people(call, Follow.follower_id, Follow.followee_id, ACCEPTED, Follow.accepted_at)


async def _my_followers(call: Call) -> Reply:
    return await _people(call, Follow.followee_id, Follow.follower_id, ACCEPTED, Follow.accepted_at)


async def _my_requests(call: Call) -> Reply:
    return await _people(call, Follow.followee_id, Follow.follower_id, PENDING, Follow.created_at)


async def _like(call: Call) -> Reply:
    other = _other(call)
    async with call.services.sessions() as session, session.begin():
        await visible_account(session, call.me.user_id, other)
        total, notes = await add_like(session, call.me.user_id, other)
    await notifications.push(call.services.realtime, notes)
    return Reply({"user_id": str(other), "total_likes": total}, 201)


async def _block(call: Call) -> Reply:
    me, other = call.me.user_id, _other(call)
    async with call.services.sessions() as session, session.begin():
        account = await session.get(Account, other)
        if account is None:
            raise NotFound("no such user")
        await session.execute(insert(Block).values(blocker_id=me, blocked_id=other).on_conflict_do_nothing())
        await session.execute(delete(Follow).where(or_(
            and_(Follow.follower_id == me, Follow.followee_id == other),
            and_(Follow.follower_id == other, Follow.followee_id == me),
        )))
    # The block sets share the {mm} slot; on a Redis Cluster the two friends sets are each in their
    # user's slot (written without MULTI: a lost write is repaired by POST /moderation/friends/rebuild).
    async with atomic_pipeline(call.services.redis) as pipe:
        pipe.sadd(blocks_key(str(me)), str(other))
        pipe.sadd(blocks_key(str(other)), str(me))
        pipe.srem(friends_key(str(me)), str(other))  # the follows went with the block
        pipe.srem(friends_key(str(other)), str(me))
        await pipe.execute()
    # After the sets: a node that reads them from now on refuses the pair; this ends what is live.
    notice = {"user": str(me), "kind": "block", "other": str(other)}
    try:
        await call.services.redis.publish(SANCTIONS_CHANNEL, json.dumps(notice))
    except RedisError:  # the block stands (sets written); a live call would end only at hangup
        log.error("a block could not be announced to the nodes", extra={"other": str(other)}, exc_info=True)
    return Reply({"user_id": str(other), "blocked": True}, 201)


async def _unblock(call: Call) -> Reply:
    me, other = call.me.user_id, call.params["user_id"]
    async with call.services.sessions() as session, session.begin():
        await session.execute(delete(Block).where(Block.blocker_id == me, Block.blocked_id == other))
        still = await session.get(Block, (other, me))
    if still is None:  # the pair stays apart in Redis while the other's block stands
        async with atomic_pipeline(call.services.redis) as pipe:
            pipe.srem(blocks_key(str(me)), str(other))
            pipe.srem(blocks_key(str(other)), str(me))
            await pipe.execute()
    return Reply(None, 204)


async def _my_blocks(call: Call) -> Reply:
    stmt = (
        select(Block.blocked_id, Profile.pseudo)
        .outerjoin(Profile, Profile.account_id == Block.blocked_id)
        .where(Block.blocker_id == call.me.user_id)
        .order_by(Block.created_at.desc())
    )
    async with call.services.sessions() as session:
        rows = (await session.execute(stmt)).all()
    # ``people`` names them for the unblock list (the blocker chose them; their profile stays hidden).
    return Reply({"items": [str(uid) for uid, _ in rows],
                  "people": [{"id": str(uid), "pseudo": pseudo} for uid, pseudo in rows]})


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def _search(call: Call) -> Reply:
    me, q = call.me.user_id, call.query["q"].lower()
    pseudo = func.lower(Profile.pseudo)
    stmt = (
        select(Profile)
        .join(Account, Account.id == Profile.account_id)
        .where(Account.deleted_at.is_(None), pseudo.like(f"%{escape_like(q)}%", escape="\\"),
               not_blocked(me, Profile.account_id))
        .order_by(pseudo.like(f"{escape_like(q)}%", escape="\\").desc(), func.length(Profile.pseudo), pseudo)
        .limit(call.query.get("limit", 20))
    )
    today = datetime.now(UTC).date()
    async with call.services.sessions() as session:
        found = list(await session.scalars(stmt))
    return Reply({"items": [public_profile(p.account_id, p, today) for p in found]})


def routes() -> list[Route]:
    user = Schema({"user_id": Field("uuid")})
    page = Schema({"limit": Field("integer", required=False, minimum=1, maximum=200)})
    return [
        Route("POST", "/users/{user_id}/follow", _follow, "Ask to follow (accepted at once if they asked too)",
              "social", params=user, ok=201, idempotent=True),
        Route("DELETE", "/users/{user_id}/follow", _unfollow, "Stop following, or withdraw my request", "social",
              params=user, ok=204),
        Route("POST", "/me/follow-requests/{user_id}/accept", _accept, "Accept a follow request", "social",
              params=user),
        Route("POST", "/me/follow-requests/{user_id}/decline", _decline, "Decline a follow request", "social",
              params=user),
        Route("DELETE", "/me/followers/{user_id}", _remove_follower, "Remove a follower", "social", params=user,
              ok=204),
        Route("GET", "/me/follows", _my_follows, "Whom I follow, newest first", "social", query=page),
        Route("GET", "/me/followers", _my_followers, "Who follows me, newest first", "social", query=page),
        Route("GET", "/me/follow-requests", _my_requests, "Follow requests waiting for me", "social", query=page),
        Route("POST", "/users/{user_id}/like", _like, "Like a user (once per pair)", "social", params=user, ok=201,
              idempotent=True),
        Route("POST", "/users/{user_id}/block", _block, "Block a user: each is hidden from the other", "social",
              params=user, ok=201, idempotent=True),
        Route("DELETE", "/users/{user_id}/block", _unblock, "Unblock a user", "social", params=user, ok=204),
        Route("GET", "/me/blocks", _my_blocks, "Users I blocked", "social"),
        Route("GET", "/search/users", _search, "Search users by pseudo (prefix matches first)", "social",
              query=Schema({"q": Field("string", min_len=1, max_len=32),
                            "limit": Field("integer", required=False, minimum=1, maximum=50)})),
        *friends.routes(),
    ]
