"""Account deletion: the row stays (other records point at it) but everything personal goes.

Removed: email (replaced by a placeholder), password, profile and photo, uploads, follows, likes
given (counters corrected), blocks (and their Redis sets), notifications, codes, memberships, and
every session, including live access, room and socket tokens (the revocation epoch). Kept: messages
already delivered to others, shown as from a deleted account.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime

from sqlalchemy import delete, or_, select, update

from control_api import friends
from control_api.accounts import check_password, revoke_all
from control_api.errors import Unauthenticated
from control_api.http import Call, Reply, Route
from control_api.models import Account, AuditEntry, EmailCode
from control_api.schema import Field, Schema
from control_api.social_models import Block, Follow, Like, Media, Member, Notification, Profile
from switchboard.keyspace import blocks as blocks_key
from switchboard.redis_client import atomic_pipeline


def placeholder_email(account_id: uuid.UUID) -> str:
    return f"deleted-{account_id.hex}@deleted.invalid"


async def _delete(call: Call) -> Reply:
    services, me = call.services, call.me.user_id
    async with services.sessions() as session:
        account = await session.get(Account, me)
        stored = account.password_hash if account is not None and account.deleted_at is None else None
    if not await check_password(services, stored, call.body["password"]):
        raise Unauthenticated("the password is wrong")
    async with services.sessions() as session, session.begin():
        account = await session.get(Account, me, with_for_update=True)
        assert account is not None
        profile = await session.get(Profile, me)
        files = [profile.photo] if profile and profile.photo else []
        files += [f"{kind}-{mid.hex}" for mid in await session.scalars(select(Media.id).where(Media.owner_id == me))
                  for kind in ("media", "preview")]  # each upload and its blurred preview (control_api/ppv.py)
        liked = list(await session.scalars(select(Like.likee_id).where(Like.liker_id == me)))
        await session.execute(
            update(Profile).where(Profile.account_id.in_(liked)).values(total_likes=Profile.total_likes - 1)
        )
        peers = list(await session.scalars(
            select(Block.blocked_id).where(Block.blocker_id == me).union(
                select(Block.blocker_id).where(Block.blocked_id == me))
        ))
        for table, condition in (
            (Like, or_(Like.liker_id == me, Like.likee_id == me)),
            (Follow, or_(Follow.follower_id == me, Follow.followee_id == me)),
            (Block, or_(Block.blocker_id == me, Block.blocked_id == me)),
            (Notification, Notification.account_id == me),
            (EmailCode, EmailCode.account_id == me),
            (Member, Member.account_id == me),
            (Profile, Profile.account_id == me),
        ):
            await session.execute(delete(table).where(condition))
        await revoke_all(session, me)
        account.email = placeholder_email(me)
        account.password_hash = "!" + secrets.token_hex(16)  # matches no argon2 hash
        account.email_verified = False
        account.deleted_at = datetime.now(UTC)
        session.add(AuditEntry(actor_id=me, action="account.deleted", subject=str(me)))
    # Media rows stay until their files are gone: the attachments that point at them disappear with them.
    for name in files:
        await services.storage.delete(name)
    async with services.sessions() as session, session.begin():
        await session.execute(delete(Media).where(Media.owner_id == me))
    # Every live token of the account dies now, on the API and on the nodes (which end its sockets).
    await services.revocations.revoke(me, wait=False)
    async with atomic_pipeline(services.redis) as pipe:  # every block set is in the {mm} slot
        pipe.delete(blocks_key(str(me)))
        for peer in peers:
            pipe.srem(blocks_key(str(peer)), str(me))
        await pipe.execute()
    await friends.forget(services.redis, me)  # presence: out of every friend's set (control_api/friends.py)
    return Reply(None, 204)


def routes() -> list[Route]:
    return [
        Route("DELETE", "/me", _delete, "Delete my account: personal data removed, sessions ended", "accounts",
              body=Schema({"password": Field("string", min_len=1, max_len=128)}), ok=204),
    ]
