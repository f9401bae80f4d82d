"""In-app notifications: written with the fact that causes them, pushed to the user's node after commit."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from control_api.http import Call, Reply, Route
from control_api.realtime import Realtime
from control_api.schema import Field, Schema
from control_api.social_models import Notification

KINDS = ("follow_request", "follow_accepted", "like", "message", "live_invite", "welcome", "report_outcome",
         "call_missed", "moderation_warning")


def add(session: AsyncSession, account_id: uuid.UUID, kind: str, data: dict[str, Any]) -> Notification:
    """Adds a notification in ``session``'s transaction; call :func:`push` after commit."""
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}")
    note = Notification(account_id=account_id, kind=kind, data=data, created_at=datetime.now(UTC))
    session.add(note)
    return note


def as_json(note: Notification) -> dict[str, Any]:
    return {
        "id": note.id,
        "kind": note.kind,
        "data": note.data,
        "created_at": note.created_at.isoformat(),
        "read": note.read_at is not None,
    }


async def push(realtime: Realtime, notes: list[Notification]) -> None:
    for note in notes:
        await realtime.push(note.account_id, {"type": "notification", "notification": as_json(note)})


async def _unread(session: AsyncSession, account_id: uuid.UUID) -> int:
    return int(
        await session.scalar(
            select(func.count()).select_from(Notification)
            .where(Notification.account_id == account_id, Notification.read_at.is_(None))
        ) or 0
    )


async def _list_notifications(call: Call) -> Reply:
    limit = call.query.get("limit", 50)
    stmt = select(Notification).where(Notification.account_id == call.me.user_id)
    if "before" in call.query:
        stmt = stmt.where(Notification.id < call.query["before"])
    if call.query.get("unread_only"):
        stmt = stmt.where(Notification.read_at.is_(None))
    async with call.services.sessions() as session:
        notes = list(await session.scalars(stmt.order_by(Notification.id.desc()).limit(limit)))
        unread = await _unread(session, call.me.user_id)
    return Reply({
        "items": [as_json(n) for n in notes],
        "unread": unread,
        "next_cursor": notes[-1].id if len(notes) == limit else None,
    })


async def _mark_read(call: Call) -> Reply:
    stmt = (
        update(Notification)
        .where(Notification.account_id == call.me.user_id, Notification.read_at.is_(None))
        .values(read_at=datetime.now(UTC))
    )
    if "ids" in call.body:
        stmt = stmt.where(Notification.id.in_(call.body["ids"]))
    async with call.services.sessions() as session, session.begin():
        await session.execute(stmt)
        unread = await _unread(session, call.me.user_id)
    return Reply({"unread": unread})


def routes() -> list[Route]:
    return [
        Route("GET", "/notifications", _list_notifications, "My notifications, newest first, and the unread count",
              "notifications",
              query=Schema({
                  "before": Field("integer", required=False, minimum=1, maximum=2**63 - 1,
                                  description="cursor: next_cursor"),
                  "limit": Field("integer", required=False, minimum=1, maximum=100),
                  "unread_only": Field("boolean", required=False),
              })),
        Route("POST", "/notifications/read", _mark_read, "Mark notifications read (all, or the given ids)",
              "notifications",
              body=Schema({"ids": Field("array", required=False, max_len=500,
                                        items=Field("integer", minimum=1, maximum=2**63 - 1))})),
    ]
