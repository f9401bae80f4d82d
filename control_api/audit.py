"""The audit log: append-only (a trigger refuses UPDATE, DELETE and TRUNCATE, migration 0006).

Every privileged act writes one row in the transaction that makes it: moderator actions, hidden
token issues (``token.hidden``), taps (``tap.opened``/``tap.closed``, from the nodes' events),
sanctions (``sanction.<kind>``), lifts (``sanction.lifted``), report transitions
(``report.claimed``, ``report.actioned``, ``report.dismissed``, ``report.clip``), a moderator's
evidence clip (``clip.saved``) and show chat moderation (``show.delete``, ``show.pin``, ``show.mute``,
``show.kick``, from the nodes' events). Staff page and filter it here.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_api.http import Call, Reply, Route
from control_api.models import AuditEntry
from control_api.schema import Field, Schema
from control_api.staff import require_staff

CURSOR = Field("integer", required=False, minimum=1, maximum=2**63 - 1, description="cursor: next_cursor")
LIMIT = Field("integer", required=False, minimum=1, maximum=100)


def record(session: AsyncSession, actor: uuid.UUID | None, action: str, subject: str,
           **detail: Any) -> AuditEntry:
    """Adds one row to ``session`` (written when its transaction commits)."""
    entry = AuditEntry(actor_id=actor, action=action, subject=subject[:200], detail=detail)
    session.add(entry)
    return entry


def as_json(entry: AuditEntry) -> dict[str, Any]:
    return {"id": entry.id, "at": entry.at.isoformat(), "actor_id": str(entry.actor_id) if entry.actor_id else None,
            "action": entry.action, "subject": entry.subject, "detail": entry.detail}


def day_bounds(day: Any) -> tuple[datetime, datetime]:
    """The UTC instants a calendar day starts and ends at."""
    start = datetime.combine(day, time(0), UTC)
    return start, start + timedelta(days=1)


async def _list_audit(call: Call) -> Reply:
    q, limit = call.query, call.query.get("limit", 50)
    async with call.services.sessions() as session:
        await require_staff(session, call.me.user_id)
        stmt = select(AuditEntry)
        if "before" in q:
            stmt = stmt.where(AuditEntry.id < q["before"])
        if "action" in q:
            # A prefix ending with a dot (``report.``) selects a family of actions.
            stmt = stmt.where(AuditEntry.action.startswith(q["action"]) if q["action"].endswith(".")
                              else AuditEntry.action == q["action"])
        if "actor_id" in q:
            stmt = stmt.where(AuditEntry.actor_id == q["actor_id"])
        if "subject" in q:
            stmt = stmt.where(AuditEntry.subject == q["subject"])
        if "since" in q:
            stmt = stmt.where(AuditEntry.at >= day_bounds(q["since"])[0])
        if "until" in q:
            stmt = stmt.where(AuditEntry.at < day_bounds(q["until"])[1])
        rows = list(await session.scalars(stmt.order_by(AuditEntry.id.desc()).limit(limit)))
    return Reply({"items": [as_json(e) for e in rows], "next_cursor": rows[-1].id if len(rows) == limit else None})


def routes() -> list[Route]:
    return [
        Route("GET", "/moderation/audit", _list_audit, "The audit log, newest first, filtered (moderators)",
              "moderation",
              query=Schema({
                  "action": Field("string", required=False, min_len=1, max_len=64,
                                  description="an action, or a prefix ending with '.' (report.)"),
                  "actor_id": Field("uuid", required=False),
                  "subject": Field("string", required=False, min_len=1, max_len=200),
                  "since": Field("date", required=False, description="from this UTC day"),
                  "until": Field("date", required=False, description="to this UTC day, included"),
                  "before": CURSOR,
                  "limit": LIMIT,
              })),
    ]
