"""Sanctions: ``warning``, ``mute`` and ``ban`` for 1 h, 24 h, 30 d or until lifted; lifts; the lists.

Each acts live on every node within a second, through Redis (realtime planes never read Postgres):

- a ban writes ``keyspace.banned``, moves the account's token epoch (every live token dies) and
  publishes ``ban`` on ``keyspace.SANCTIONS_CHANNEL`` (nodes end the user's sessions, 4003); logins
  and refreshes are refused from Postgres;
- a mute writes ``keyspace.muted`` (expiring with the longest active mute) and publishes ``mute``
  (nodes refuse ``show.chat`` and ``call.chat`` with ``muted``); the API's chat routes refuse too;
  a lift that leaves no mute deletes the key and publishes ``unmute``;
- a warning publishes ``warning`` (nodes send ``moderation.warning`` to the user's open sockets) and
  leaves a ``moderation_warning`` notification for a user who is offline.

Postgres holds the truth: after each change the Redis mirror is rewritten from the active rows
(:func:`sync_live`), so two overlapping mutes or bans end when the longer one does.
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import ColumnElement, Select, and_, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from control_api import audit, notifications
from control_api.errors import Conflict, NotFound, ValidationFailed
from control_api.models import Account, RefreshToken, Sanction
from control_api.revocation import Revocations
from control_api.services import Services
from control_api.social_models import Notification
from control_api.staff import require_staff
from switchboard.keyspace import SANCTIONS_CHANNEL, banned, muted

__all__ = ["DURATIONS", "KINDS", "active_ban", "impose", "is_banned_live", "lift", "push_ban", "require_staff"]

log = logging.getLogger("switchboard.api.sanctions")

KINDS = ("ban", "mute", "warning")
DURATIONS: dict[str, int | None] = {"1h": 3600, "24h": 86400, "30d": 30 * 86400, "permanent": None}
"""The durations a moderator picks from (seconds; None: until lifted)."""


def active(now: datetime | ColumnElement[datetime] | None = None) -> ColumnElement[bool]:
    """SQL condition: the sanction is in force at ``now`` (default: now; or a bound parameter) (not
    lifted, started, not ended)."""
    if now is None:
        now = datetime.now(UTC)
    return and_(Sanction.revoked_at.is_(None), Sanction.starts_at <= now,
                or_(Sanction.ends_at.is_(None), Sanction.ends_at > now))


async def active_ban(session: AsyncSession, account_id: uuid.UUID) -> Sanction | None:
    return await session.scalar(
        select(Sanction).where(Sanction.account_id == account_id, Sanction.kind == "ban", active()).limit(1)
    )


@functools.cache
def _mute_query() -> Select[Sanction]:
    """:func:`active_mute`'s query, built once (every chat message asks it); ``account_id`` and
    ``now`` are bound per call."""
    return (select(Sanction)
            .where(Sanction.account_id == bindparam("account_id", type_=Sanction.account_id.type),
                   Sanction.kind == "mute", active(bindparam("now", type_=Sanction.starts_at.type)))
            .order_by(Sanction.ends_at.desc().nulls_first()).limit(1))


async def active_mute(session: AsyncSession, account_id: uuid.UUID) -> Sanction | None:
    """The mute in force with the latest end (a permanent one first), or None."""
    return await session.scalar(_mute_query(), {"account_id": account_id, "now": datetime.now(UTC)})


async def is_banned_live(redis: Redis, account_id: uuid.UUID) -> bool:
    """The Redis mark of a ban (one round trip; no Postgres): what nodes check too."""
    return bool(await redis.exists(banned(str(account_id))))


async def push_ban(redis: Redis, target: uuid.UUID, duration_s: int | None) -> None:
    """Marks the ban in Redis, moves the account's token epoch (its live tokens die on every door)
    and tells every node. The sanction is already committed: a Redis failure is logged, and the
    Postgres checks (login, refresh, socket tokens) still hold."""
    await Revocations(redis).ban(target, duration_s)


def as_json(s: Sanction) -> dict[str, Any]:
    return {"id": s.id, "account_id": str(s.account_id), "kind": s.kind, "reason": s.reason,
            "starts_at": s.starts_at.isoformat(), "ends_at": s.ends_at.isoformat() if s.ends_at else None,
            "created_by": str(s.created_by) if s.created_by else None, "report_id": s.report_id,
            "lifted_at": s.revoked_at.isoformat() if s.revoked_at else None,
            "lifted_by": str(s.revoked_by) if s.revoked_by else None, "lift_reason": s.revoke_reason,
            "active": s.revoked_at is None and (s.ends_at is None or s.ends_at > datetime.now(UTC))}


async def impose(session: AsyncSession, staff: Account, target: uuid.UUID, kind: str, duration_s: int | None,
                 reason: str, report_id: int | None = None) -> tuple[Sanction, list[Notification]]:
    """Writes a sanction and its audit row in ``session``'s transaction; call :func:`sync_live`
    after commit. A warning has no duration (it is a notice)."""
    account = await session.get(Account, target)
    if account is None or account.deleted_at is not None:
        raise NotFound("no such account")
    if target == staff.id:
        raise ValidationFailed({"account_id": "a moderator does not sanction themselves"})
    now = datetime.now(UTC)
    if kind == "warning":
        duration_s = None
    sanction = Sanction(account_id=target, kind=kind, reason=reason, starts_at=now, created_by=staff.id,
                        ends_at=now + timedelta(seconds=duration_s) if duration_s else None, report_id=report_id,
                        revoke_reason="")
    session.add(sanction)
    if kind == "ban":
        await session.execute(
            update(RefreshToken).where(RefreshToken.account_id == target, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )
    await session.flush()
    audit.record(session, staff.id, f"sanction.{kind}", str(target), sanction_id=sanction.id, reason=reason,
                 duration_s=duration_s, report_id=report_id)
    notes = []
    if kind == "warning":
        notes.append(notifications.add(session, target, "moderation_warning", {"message": reason}))
    return sanction, notes


async def lift(session: AsyncSession, staff: Account, sanction_id: int, reason: str) -> Sanction:
    """Lifts an active sanction (a conditional UPDATE: of two lifts, one wins); Conflict when it
    was lifted or had ended already, NotFound when there is none."""
    now = datetime.now(UTC)
    lifted = await session.scalar(
        update(Sanction).where(Sanction.id == sanction_id, Sanction.revoked_at.is_(None),
                               or_(Sanction.ends_at.is_(None), Sanction.ends_at > now))
        .values(revoked_at=now, revoked_by=staff.id, revoke_reason=reason).returning(Sanction)
    )
    if lifted is None:
        existing = await session.get(Sanction, sanction_id)
        if existing is None:
            raise NotFound("no such sanction")
        raise Conflict("this sanction was lifted already" if existing.revoked_at else "this sanction has ended")
    audit.record(session, staff.id, "sanction.lifted", str(lifted.account_id), sanction_id=lifted.id,
                 kind=lifted.kind, reason=reason)
    return lifted


async def sync_live(services: Services, target: uuid.UUID, kind: str, *, fresh: Sanction | None = None,
                    notes: list[Notification] | None = None) -> None:
    """After commit: the Redis mirror and the nodes follow Postgres. ``fresh`` is a sanction just
    imposed (a ban moves the token epoch, a warning is sent); a lift passes None. Redis failures are
    logged: the Postgres record stands and the next change rewrites the mirror."""
    user, redis = str(target), services.redis
    try:
        if kind == "warning" and fresh is not None:
            await redis.publish(SANCTIONS_CHANNEL, json.dumps({"user": user, "kind": "warning",
                                                               "message": fresh.reason}))
        elif kind == "ban":
            async with services.sessions() as session:
                longest = await session.scalar(
                    select(Sanction).where(Sanction.account_id == target, Sanction.kind == "ban", active())
                    .order_by(Sanction.ends_at.desc().nulls_first()).limit(1))
            if longest is None:
                await redis.delete(banned(user))
            elif fresh is not None:
                await push_ban(redis, target, _left_s(longest))
            else:
                await redis.set(banned(user), "1", ex=_left_s(longest))
        elif kind == "mute":
            async with services.sessions() as session:
                longest = await active_mute(session, target)
            if longest is None:
                await redis.delete(muted(user))
                await redis.publish(SANCTIONS_CHANNEL, json.dumps({"user": user, "kind": "unmute"}))
            else:
                until = int(longest.ends_at.timestamp()) if longest.ends_at else None
                await redis.set(muted(user), str(until or 0), ex=_left_s(longest))
                await redis.publish(SANCTIONS_CHANNEL, json.dumps({"user": user, "kind": "mute", "until": until}))
    except RedisError:
        log.error("a %s could not be mirrored to Redis", kind, extra={"account": user}, exc_info=True)
    await notifications.push(services.realtime, notes or [])


def _left_s(sanction: Sanction) -> int | None:
    if sanction.ends_at is None:
        return None
    return max(1, int((sanction.ends_at - datetime.now(UTC)).total_seconds() + 0.999))
