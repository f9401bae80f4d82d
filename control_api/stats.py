"""Activity and the console's counters.

Active users come from tracked events: ``register``, ``login``, ``match`` (the matchmaker's
``match.paired`` stream entries), ``like``, ``message`` and ``report``. Each event upserts one row
per (UTC day, user) in ``activity_days`` (a bit per kind), written in the transaction of the fact
itself, so millions of events make at most one row per user and day. DAU, WAU and MAU are distinct
users over 1, 7 and 30 days ending on a day.

The console never scans those rows for today: a user's first event of a day (the upsert inserted)
also moves the user's latest active day forward (``activity_last``) and the count of users per
latest day with it (``activity_counts``, in shards). The users active in a window ending today are
exactly those whose latest day falls in it, so today's DAU/WAU/MAU are sums of at most 30 days of
shard counters, exact (not estimated), kept in the same transactions as the facts. A finished day's
figures are computed once from the raw rows and kept in ``activity_rollups`` (the counters describe
only windows ending today: a user active since has moved on). (Chosen over HyperLogLog in Redis:
exact, durable with the facts, and nothing to rebuild after a Redis loss.)
"""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, literal_column, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import ReturningInsert

from control_api.audit import day_bounds
from control_api.http import Call, Reply, Route
from control_api.models import Activity, ActivityCount, ActivityLast, ActivityRollup, AuditEntry, Report, Sanction
from control_api.schema import Field, Schema
from control_api.staff import require_staff

EVENT_BITS = {"register": 1, "login": 2, "match": 4, "like": 8, "message": 16, "report": 32}
"""The tracked event kinds and their bit in ``activity_days.kinds``."""
WINDOWS = {"dau": 1, "wau": 7, "mau": 30}
SHARDS = 16
"""Rows per day in ``activity_counts``: a user's counter is shard ``id % SHARDS``, so concurrent first
events of the day seldom wait on the same row."""


def today() -> date:
    return datetime.now(UTC).date()


@functools.cache
def _track_statement() -> ReturningInsert[Any]:
    """:func:`track`'s upsert on the table (not the ORM entity: no bulk-insert machinery), built once
    (every message, like and login runs it); ``day``, ``account_id`` and ``bit`` are bound per call."""
    table = cast(Table, Activity.__table__)
    bit = bindparam("bit", type_=table.c.kinds.type)
    stmt = insert(table).values(day=bindparam("day", type_=table.c.day.type),
                                account_id=bindparam("account_id", type_=table.c.account_id.type), kinds=bit)
    # xmax is 0 on a row this statement inserted (the user's first event that day), not on one it updated.
    return stmt.on_conflict_do_update(index_elements=[table.c.day, table.c.account_id],
                                      set_={"kinds": table.c.kinds.op("|")(bit)}
                                      ).returning(literal_column("xmax = 0"))


async def track(session: AsyncSession, user: uuid.UUID, kind: str, day: date | None = None) -> None:
    """Counts ``user`` active on ``day`` (today) for ``kind``, in ``session``'s transaction."""
    await track_all(session, [user], kind, day)


async def track_all(session: AsyncSession, users: list[uuid.UUID], kind: str, day: date | None = None) -> None:
    """:func:`track` for several users in one transaction (a match's two). Counter rows are shared
    between users, so each transaction changes them in one global order (by day, then shard): two
    transactions moving users never wait on each other in a cycle."""
    day = day or today()
    deltas: dict[tuple[date, int], int] = {}
    for user in sorted(set(users)):
        first = await session.scalar(_track_statement(), {"day": day, "account_id": user, "bit": EVENT_BITS[kind]})
        if first:
            moved, before = await _latest(session, user, day)
            if moved:
                shard = user.int % SHARDS
                deltas[(day, shard)] = deltas.get((day, shard), 0) + 1
                if before is not None:
                    deltas[(before, shard)] = deltas.get((before, shard), 0) - 1
    for (on, shard), delta in sorted(deltas.items()):
        if delta:
            stmt = insert(ActivityCount).values(day=on, shard=shard, users=delta)
            await session.execute(stmt.on_conflict_do_update(index_elements=["day", "shard"],
                                                             set_={"users": ActivityCount.users + delta}))


async def _latest(session: AsyncSession, user: uuid.UUID, day: date) -> tuple[bool, date | None]:
    """``user`` was active on ``day``: their latest active day moves there unless it is later.
    Returns whether it moved, and from which day (None: the user's first active day ever)."""
    made = await session.scalar(insert(ActivityLast).values(account_id=user, day=day)
                                .on_conflict_do_nothing().returning(ActivityLast.day))
    if made is not None:
        return True, None
    before = await session.scalar(select(ActivityLast.day).where(ActivityLast.account_id == user).with_for_update())
    if before is None or before >= day:
        return False, None
    await session.execute(update(ActivityLast).where(ActivityLast.account_id == user).values(day=day))
    return True, before


async def active_users(session: AsyncSession, day: date) -> dict[str, int]:
    """DAU, WAU and MAU for the windows ending on ``day``: stored for a finished day (computed from
    the raw rows and kept on first ask), summed from the latest-day counters for today (never a
    scan of the raw rows)."""
    if day >= today():
        return {name: int(await session.scalar(
            select(func.coalesce(func.sum(ActivityCount.users), 0))
            .where(ActivityCount.day > day - timedelta(days=days), ActivityCount.day <= day)) or 0)
            for name, days in WINDOWS.items()}
    kept = await session.get(ActivityRollup, day)
    if kept is not None:
        return {"dau": kept.dau, "wau": kept.wau, "mau": kept.mau}
    figures = {}
    for name, days in WINDOWS.items():
        figures[name] = int(await session.scalar(
            select(func.count(func.distinct(Activity.account_id)))
            .where(Activity.day > day - timedelta(days=days), Activity.day <= day)) or 0)
    await session.execute(insert(ActivityRollup).values(day=day, **figures).on_conflict_do_nothing())
    return figures


async def counters(session: AsyncSession) -> dict[str, Any]:
    """What the console's dashboard shows."""
    start, end = day_bounds(today())
    by_status = dict((await session.execute(
        select(Report.status, func.count()).where(Report.status.in_(("open", "in_review"))).group_by(Report.status)
    )).all())
    now = datetime.now(UTC)
    active = dict((await session.execute(
        select(Sanction.kind, func.count()).where(Sanction.revoked_at.is_(None), Sanction.starts_at <= now,
                                                  (Sanction.ends_at.is_(None)) | (Sanction.ends_at > now))
        .group_by(Sanction.kind))).all())
    actions = (await session.execute(
        select(AuditEntry.actor_id, func.count()).where(
            AuditEntry.at >= start, AuditEntry.at < end, AuditEntry.actor_id.is_not(None),
            AuditEntry.action.startswith("sanction.") | AuditEntry.action.startswith("report."))
        .group_by(AuditEntry.actor_id))).all()
    return {
        "reports": {"open": by_status.get("open", 0), "in_review": by_status.get("in_review", 0),
                    "today": int(await session.scalar(select(func.count()).select_from(Report).where(
                        Report.created_at >= start, Report.created_at < end)) or 0)},
        "sanctions_active": {k: active.get(k, 0) for k in ("ban", "mute")},
        "actions_today": {str(actor): n for actor, n in actions},
    }


async def _stats(call: Call) -> Reply:
    day = call.query.get("day") or today()
    async with call.services.sessions() as session, session.begin():
        await require_staff(session, call.me.user_id)
        out = await counters(session)
        out["active_users"] = {"day": day.isoformat(), **await active_users(session, day)}
    return Reply(out)


def routes() -> list[Route]:
    return [
        Route("GET", "/moderation/stats", _stats,
              "The console's counters: reports, active sanctions, actions per moderator today, DAU/WAU/MAU "
              "(moderators)", "moderation",
              query=Schema({"day": Field("date", required=False, description="DAU/WAU/MAU ending on this UTC day")})),
    ]
