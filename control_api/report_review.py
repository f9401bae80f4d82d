"""Moderators review reports: list, one with its context, claim, action (with a sanction), dismiss.

Transitions are conditional UPDATEs, so concurrent moderators cannot both win: ``claim`` moves
``open`` -> ``in_review`` (the first claim wins; others get 409 and see who holds it); ``action`` and
``dismiss`` close a report that is open, or in review by the caller. Each transition writes an
audit row (``report.claimed``, ``report.actioned``, ``report.dismissed``) and closing tells the
reporter the outcome (a ``report_outcome`` notification: ``actioned`` or ``dismissed``, never the
sanction).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from control_api import audit, notifications
from control_api.audit import CURSOR, LIMIT, day_bounds
from control_api.errors import Conflict, NotFound
from control_api.http import Call, Reply, Route
from control_api.models import Account, Report, Sanction
from control_api.reports import OPEN, REASONS, STATUSES, as_json
from control_api.sanction_routes import REASON, duration_of
from control_api.sanctions import DURATIONS, KINDS, impose, sync_live
from control_api.sanctions import as_json as sanction_json
from control_api.schema import Field, Schema
from control_api.social_models import Message, Notification, Profile
from control_api.staff import require_staff

ID = Schema({"report_id": Field("integer", minimum=1, maximum=2**63 - 1)})


async def _list_reports(call: Call) -> Reply:
    q, limit = call.query, call.query.get("limit", 50)
    async with call.services.sessions() as session:
        await require_staff(session, call.me.user_id)
        stmt = select(Report)
        if "status" in q:
            stmt = stmt.where(Report.status == q["status"])
        if "reason" in q:
            stmt = stmt.where(Report.reason == q["reason"])
        if "user_id" in q:
            stmt = stmt.where(Report.reported_id == q["user_id"])
        if "since" in q:
            stmt = stmt.where(Report.created_at >= day_bounds(q["since"])[0])
        if "until" in q:
            stmt = stmt.where(Report.created_at < day_bounds(q["until"])[1])
        if "before" in q:
            stmt = stmt.where(Report.id < q["before"])
        reports = list(await session.scalars(stmt.order_by(Report.id.desc()).limit(limit)))
    return Reply({"items": [as_json(r, staff=True) for r in reports],
                  "next_cursor": reports[-1].id if len(reports) == limit else None})


async def _get_report(call: Call) -> Reply:
    async with call.services.sessions() as session:
        await require_staff(session, call.me.user_id)
        report = await session.get(Report, call.params["report_id"])
        if report is None:
            raise NotFound("no such report")
        return Reply({**as_json(report, staff=True), "context_detail": await _context(session, report)})


async def _context(session: AsyncSession, report: Report) -> dict[str, Any]:
    target = report.reported_id
    account = await session.get(Account, target)
    profile = await session.get(Profile, target)
    message = await session.get(Message, report.message_id) if report.message_id else None
    prior = list(await session.scalars(select(Report).where(Report.reported_id == target, Report.id != report.id)
                                       .order_by(Report.id.desc()).limit(20)))
    sanctions = list(await session.scalars(select(Sanction).where(Sanction.account_id == target)
                                           .order_by(Sanction.id.desc()).limit(20)))
    return {
        "target": {"user_id": str(target), "email_verified": bool(account and account.email_verified),
                   "created_at": account.created_at.isoformat() if account else None,
                   "deleted": bool(account and account.deleted_at),
                   "profile": None if profile is None else {
                       "pseudo": profile.pseudo, "bio": profile.bio, "country": profile.country,
                       "photo_url": f"/api/users/{target}/photo" if profile.photo else None}},
        "message": None if message is None else {
            "id": message.id, "text": message.text, "sender_id": str(message.sender_id) if message.sender_id else None,
            "created_at": message.created_at.isoformat()},
        "prior_reports": [as_json(r, staff=True) for r in prior],
        "sanctions": [sanction_json(s) for s in sanctions],
    }


async def _transition(session: AsyncSession, report_id: int, values: dict[str, Any], *, claim: bool,
                      me: Any) -> Report:
    """The conditional UPDATE of a transition; Conflict (what stands in the way) or NotFound."""
    stmt = update(Report).where(Report.id == report_id)
    if claim:
        stmt = stmt.where(Report.status == "open")
    else:
        stmt = stmt.where(Report.status.in_(OPEN), or_(Report.claimed_by.is_(None), Report.claimed_by == me))
    report = await session.scalar(stmt.values(**values).returning(Report))
    if report is not None:
        return report
    existing = await session.get(Report, report_id)
    if existing is None:
        raise NotFound("no such report")
    if existing.status in OPEN:
        raise Conflict(f"this report is in review by another moderator ({existing.claimed_by})")
    raise Conflict(f"this report is {existing.status} already")


async def _claim(call: Call) -> Reply:
    me, now = call.me.user_id, datetime.now(UTC)
    async with call.services.sessions() as session, session.begin():
        await require_staff(session, me)
        report = await _transition(session, call.params["report_id"],
                                   {"status": "in_review", "claimed_by": me, "claimed_at": now}, claim=True, me=me)
        audit.record(session, me, "report.claimed", str(report.id), user_id=str(report.reported_id))
    return Reply(as_json(report, staff=True))


async def _close(call: Call, outcome: str) -> Reply:
    me, now = call.me.user_id, datetime.now(UTC)
    wanted: dict[str, Any] = call.body.get("sanction") or {}  # the action route's schema requires it
    notes: list[Notification] = []
    sanction = None
    async with call.services.sessions() as session, session.begin():
        staff = await require_staff(session, me)
        report = await _transition(session, call.params["report_id"], {
            "status": outcome, "closed_at": now, "resolution": call.body.get("note", ""),
            "claimed_by": me, "claimed_at": func.coalesce(Report.claimed_at, now)}, claim=False, me=me)
        if outcome == "actioned":
            sanction, notes = await impose(session, staff, report.reported_id, wanted["kind"], duration_of(wanted),
                                           wanted.get("reason") or f"report {report.id}: {report.reason}", report.id)
            report.sanction_id = sanction.id
        audit.record(session, me, f"report.{outcome}", str(report.id), user_id=str(report.reported_id),
                     sanction_id=sanction.id if sanction else None, note=call.body.get("note", ""))
        if report.reporter_id is not None:
            notes.append(notifications.add(session, report.reporter_id, "report_outcome",
                                           {"report_id": report.id, "outcome": outcome}))
        answer = as_json(report, staff=True)
    if sanction is not None:
        await sync_live(call.services, sanction.account_id, sanction.kind, fresh=sanction, notes=notes)
    else:
        await notifications.push(call.services.realtime, notes)
    return Reply(answer)


async def _action(call: Call) -> Reply:
    return await _close(call, "actioned")


async def _dismiss(call: Call) -> Reply:
    return await _close(call, "dismissed")


def routes() -> list[Route]:
    note = Field("string", required=False, max_len=1000, description="the moderator's note (staff only)")
    return [
        Route("GET", "/moderation/reports", _list_reports, "Reports, newest first, filtered (moderators)", "moderation",
              query=Schema({
                  "status": Field("string", required=False, choices=STATUSES),
                  "reason": Field("string", required=False, choices=REASONS),
                  "user_id": Field("uuid", required=False, description="the reported user"),
                  "since": Field("date", required=False, description="made on or after this UTC day"),
                  "until": Field("date", required=False, description="made on or before this UTC day"),
                  "before": CURSOR, "limit": LIMIT,
              })),
        Route("GET", "/moderation/reports/{report_id}", _get_report,
              "One report with its context: message, profile, prior reports and sanctions, clip (moderators)",
              "moderation", params=ID),
        Route("POST", "/moderation/reports/{report_id}/claim", _claim,
              "Claim an open report for review (one moderator wins; others get 409)", "moderation", params=ID),
        Route("POST", "/moderation/reports/{report_id}/action", _action,
              "Close a report with a sanction on the reported user; the reporter learns the outcome", "moderation",
              params=ID, body=Schema({
                  "sanction": Field("object", shape=Schema({
                      "kind": Field("string", choices=KINDS),
                      "duration": Field("string", required=False, choices=tuple(DURATIONS)),
                      "duration_s": Field("integer", required=False, minimum=1, maximum=10 * 365 * 86400),
                      "reason": REASON,
                  })),
                  "note": note,
              })),
        Route("POST", "/moderation/reports/{report_id}/dismiss", _dismiss,
              "Close a report with no action; the reporter learns the outcome", "moderation",
              params=ID, body=Schema({"note": note})),
    ]
