"""Reports: a user reports another (from a random-chat session or a show); moderators list them.

This is the minimal part the browser's report button needs; handling a report (sanctions,
``report_outcome`` notifications) belongs to the moderation workflow.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from control_api.errors import NotFound, ValidationFailed
from control_api.http import Call, Reply, Route
from control_api.models import Account, Report
from control_api.rooms import ROOM
from control_api.sanctions import require_staff
from control_api.schema import Field, Schema

STATUSES = ("open",)


def as_json(report: Report) -> dict[str, Any]:
    return {"id": report.id, "reporter_id": str(report.reporter_id) if report.reporter_id else None,
            "user_id": str(report.reported_id), "session_id": report.session_id, "room": report.room,
            "reason": report.reason, "status": report.status, "created_at": report.created_at.isoformat()}


async def _report(call: Call) -> Reply:
    me, other = call.me.user_id, call.body["user_id"]
    if other == me:
        raise ValidationFailed({"user_id": "must be another user"})
    async with call.services.sessions() as session, session.begin():
        # A user one has blocked may still be reported: no visibility check beyond existence.
        account = await session.get(Account, other)
        if account is None or account.deleted_at is not None:
            raise NotFound("no such user")
        report = Report(reporter_id=me, reported_id=other, session_id=call.body.get("session_id"),
                        room=call.body.get("room"), reason=call.body["reason"], status="open")
        session.add(report)
        await session.flush()
        await session.refresh(report)
        answer = as_json(report)
    return Reply(answer, 201)


async def _list(call: Call) -> Reply:
    limit = call.query.get("limit", 50)
    async with call.services.sessions() as session:
        await require_staff(session, call.me.user_id)
        stmt = select(Report).where(Report.status == call.query.get("status", "open"))
        if "before" in call.query:
            stmt = stmt.where(Report.id < call.query["before"])
        reports = list(await session.scalars(stmt.order_by(Report.id.desc()).limit(limit)))
    return Reply({"items": [as_json(r) for r in reports],
                  "next_cursor": reports[-1].id if len(reports) == limit else None})


def routes() -> list[Route]:
    return [
        Route("POST", "/reports", _report, "Report a user (from a random-chat session or a show)", "moderation",
              body=Schema({
                  "user_id": Field("uuid"),
                  "reason": Field("string", min_len=1, max_len=1000),
                  "session_id": Field("string", required=False, min_len=1, max_len=128,
                                      description="match.found's session_id"),
                  "room": Field("string", required=False, pattern=ROOM),
              }),
              ok=201, idempotent=True),
        Route("GET", "/moderation/reports", _list, "Reports, newest first (moderators)", "moderation",
              query=Schema({
                  "status": Field("string", required=False, choices=STATUSES),
                  "before": Field("integer", required=False, minimum=1, maximum=2**63 - 1,
                                  description="cursor: next_cursor"),
                  "limit": Field("integer", required=False, minimum=1, maximum=100),
              })),
    ]
