"""Sanctions (the minimal part the accounts need now): ban checks, and moderators imposing one.

A ban acts live: besides refusing logins and refreshes (Postgres), it writes ``keyspace.banned`` in
Redis (nodes refuse the user's sockets while it exists, and the API refuses them new room tokens),
moves the account's token epoch (every live access, room and socket token dies) and publishes on
``keyspace.SANCTIONS_CHANNEL`` (every node ends the user's open sessions, 4003).

The moderation issue completes the workflow (reports, appeals, mutes in rooms); the table is ready.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from control_api.errors import Forbidden, NotFound
from control_api.http import Call, Reply, Route
from control_api.models import Account, AuditEntry, RefreshToken, Role, Sanction
from control_api.revocation import Revocations
from control_api.schema import Field, Schema
from switchboard.keyspace import banned

KINDS = ("ban", "mute", "warning")


async def active_ban(session: AsyncSession, account_id: uuid.UUID) -> Sanction | None:
    now = datetime.now(UTC)
    return await session.scalar(
        select(Sanction)
        .where(Sanction.account_id == account_id, Sanction.kind == "ban", Sanction.revoked_at.is_(None))
        .where(Sanction.starts_at <= now, or_(Sanction.ends_at.is_(None), Sanction.ends_at > now))
        .limit(1)
    )


async def is_banned_live(redis: Redis, account_id: uuid.UUID) -> bool:
    """The Redis mark of a ban (one round trip; no Postgres): what nodes check too."""
    return bool(await redis.exists(banned(str(account_id))))


async def push_ban(redis: Redis, target: uuid.UUID, duration_s: int | None) -> None:
    """Marks the ban in Redis, moves the account's token epoch (its live tokens die on every door)
    and tells every node. The sanction is already committed: a Redis failure is logged, and the
    Postgres checks (login, refresh, socket tokens) still hold."""
    await Revocations(redis).ban(target, duration_s)


async def require_staff(session: AsyncSession, account_id: uuid.UUID) -> Account:
    """The caller's account, re-read from Postgres, when it is a moderator or admin (else Forbidden)."""
    account = await session.get(Account, account_id)
    if account is None or account.deleted_at is not None or account.role not in (Role.MODERATOR, Role.ADMIN):
        raise Forbidden("moderators only")
    return account


async def _impose(call: Call) -> Reply:
    target = call.params["account_id"]
    async with call.services.sessions() as session, session.begin():
        staff = await require_staff(session, call.me.user_id)
        if await session.get(Account, target) is None:
            raise NotFound("no such account")
        duration = call.body.get("duration_s")
        now = datetime.now(UTC)
        sanction = Sanction(
            account_id=target,
            kind=call.body["kind"],
            reason=call.body.get("reason", ""),
            starts_at=now,
            ends_at=now + timedelta(seconds=duration) if duration else None,
            created_by=staff.id,
        )
        session.add(sanction)
        if sanction.kind == "ban":
            await session.execute(
                update(RefreshToken)
                .where(RefreshToken.account_id == target, RefreshToken.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        await session.flush()
        session.add(
            AuditEntry(actor_id=staff.id, action=f"sanction.{sanction.kind}", subject=str(target),
                       detail={"sanction_id": sanction.id, "reason": sanction.reason, "duration_s": duration})
        )
    if sanction.kind == "ban":
        await push_ban(call.services.redis, target, duration)
    return Reply(
        {"id": sanction.id, "account_id": str(target), "kind": sanction.kind, "reason": sanction.reason,
         "starts_at": sanction.starts_at.isoformat(),
         "ends_at": sanction.ends_at.isoformat() if sanction.ends_at else None},
        201,
    )


def routes() -> list[Route]:
    return [
        Route(
            "POST", "/moderation/accounts/{account_id}/sanctions", _impose,
            "Impose a sanction on an account (moderators); a ban also revokes its refresh tokens", "moderation",
            params=Schema({"account_id": Field("uuid")}),
            body=Schema({
                "kind": Field("string", choices=KINDS),
                "reason": Field("string", required=False, max_len=1000),
                "duration_s": Field("integer", required=False, minimum=1, maximum=10 * 365 * 86400,
                                    description="absent: until revoked"),
            }),
            ok=201, idempotent=True,
        ),
    ]
