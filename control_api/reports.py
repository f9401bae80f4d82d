"""Reports: a user reports another from a profile, a message or a live session.

Contexts: ``profile`` (just the user), ``message`` (a chat message id: its sender is the target,
and the reporter must be able to read it), ``live`` (a call or random-chat ``session_id``, or a
show ``room``: it must exist and the reporter and the target must have been in it, as the realtime
planes recorded in Redis: :mod:`control_api.live_parties`; without ``user_id``, the other party or
the show's owner). Reasons are a closed set (:data:`REASONS`) with an optional comment. A reporter has
at most one open report per target and context (a unique partial index): a repeat answers the open
one (200) instead of making another. A new report on a live session asks the nodes for its evidence
clip (:func:`control_api.clips.clip_for_report`): when the session's media runs through an SFU, its
last 30 s are linked to the report a moment later. The moderators' side is :mod:`control_api.report_review`.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from control_api import live_parties, stats
from control_api.chat import open_conversation
from control_api.clips import clip_for_report
from control_api.errors import NotFound, ValidationFailed
from control_api.http import Call, Reply, Route
from control_api.models import Account, Report
from control_api.rooms import ROOM
from control_api.schema import Field, Schema
from control_api.social_models import Message
from control_api.webhooks import outbox as webhooks

REASONS = ("nudity_minor", "harassment", "spam_scam", "hate_violence", "other")
STATUSES = ("open", "in_review", "actioned", "dismissed")
OPEN = ("open", "in_review")
CONTEXTS = ("profile", "message", "live")


def clip_url(clip_id: str) -> str:
    """Where the console plays an evidence clip (served by the clips feature's own route)."""
    return f"/api/moderation/clips/{clip_id}/file"


def as_json(report: Report, *, staff: bool = False) -> dict[str, Any]:
    """A report as its reporter sees it; ``staff`` adds the review fields."""
    out: dict[str, Any] = {
        "id": report.id, "reporter_id": str(report.reporter_id) if report.reporter_id else None,
        "user_id": str(report.reported_id), "context": report.context, "message_id": report.message_id,
        "session_id": report.session_id, "room": report.room, "reason": report.reason, "comment": report.comment,
        "status": report.status, "created_at": report.created_at.isoformat(),
    }
    if staff:
        out.update({
            "claimed_by": str(report.claimed_by) if report.claimed_by else None,
            "claimed_at": report.claimed_at.isoformat() if report.claimed_at else None,
            "closed_at": report.closed_at.isoformat() if report.closed_at else None,
            "resolution": report.resolution, "sanction_id": report.sanction_id,
            "clip": {"id": report.clip_id, "url": clip_url(report.clip_id)} if report.clip_id else None,
        })
    return out


def _context(body: dict[str, Any]) -> str:
    given = [k for k in ("message_id", "session_id", "room") if body.get(k) is not None]
    if len(given) > 1:
        raise ValidationFailed({given[1]: f"a report has one context: {given[0]} or {given[1]}, not both"})
    if not given:
        return "profile"
    return "message" if given[0] == "message_id" else "live"


async def _report(call: Call) -> Reply:
    reply = await _store(call)
    report = reply.body
    if reply.status == 201 and report["context"] == "live":
        # The session's last seconds, from whichever node's SFU carries it (after the commit, so the
        # ingest finds the report); a P2P call or a session already over simply has no clip.
        await clip_for_report(call.services, report["id"], report["session_id"] or report["room"])
    return reply


async def _store(call: Call) -> Reply:
    me, body = call.me.user_id, call.body
    context = _context(body)
    async with call.services.sessions() as session, session.begin():
        target: uuid.UUID | None = body.get("user_id")
        if context == "message":
            message = await session.get(Message, body["message_id"])
            if message is None:
                raise NotFound("no such message")
            await open_conversation(session, me, message.conversation_id)  # one may report only what one reads
            if message.sender_id is None or (target is not None and target != message.sender_id):
                raise ValidationFailed({"user_id": "is not the message's sender"})
            target = message.sender_id
        if context == "live":  # a session or show that exists, with the reporter and the target in it
            target = await live_parties.check(call.services.redis, session, me, target, body.get("session_id"),
                                              body.get("room"))
        if target is None:
            raise ValidationFailed({"user_id": "name the user reported (or give a message_id)"})
        if target == me:
            raise ValidationFailed({"user_id": "must be another user"})
        # A user one has blocked may still be reported: no visibility check beyond existence.
        account = await session.get(Account, target)
        if account is None or account.deleted_at is not None:
            raise NotFound("no such user")
        values = {"reporter_id": me, "reported_id": target, "context": context, "message_id": body.get("message_id"),
                  "session_id": body.get("session_id"), "room": body.get("room"), "reason": body["reason"],
                  "comment": body.get("comment", ""), "status": "open", "resolution": ""}
        made = await session.scalar(insert(Report).values(**values).on_conflict_do_nothing().returning(Report.id))
        if made is None:  # this reporter's open report on the same target and context
            report = await session.scalar(select(Report).where(
                Report.reporter_id == me, Report.reported_id == target, Report.context == context,
                Report.status.in_(OPEN), Report.message_id.is_not_distinct_from(values["message_id"]),
                Report.session_id.is_not_distinct_from(values["session_id"]),
                Report.room.is_not_distinct_from(values["room"])))
            if report is None:  # pragma: no cover - closed between the two statements: ask again
                raise NotFound("the report changed meanwhile; send it again")
            return Reply(as_json(report), 200)
        await stats.track(session, me, "report")
        await webhooks.record(session, "report_created", {"report_id": made, "reported_id": str(target),
                                                          "reason": body["reason"], "context": context})
        report = await session.get(Report, made)
        assert report is not None
        return Reply(as_json(report), 201)


def routes() -> list[Route]:
    return [
        Route("POST", "/reports", _report,
              "Report a user: from a profile, a message (message_id) or a live session (session_id or room); "
              "a repeat answers the open report (200)", "moderation",
              body=Schema({
                  "user_id": Field("uuid", required=False, description="the reported user (optional with message_id, "
                                   "session_id: the other party, or room: its owner)"),
                  "reason": Field("string", choices=REASONS),
                  "comment": Field("string", required=False, max_len=1000),
                  "message_id": Field("integer", required=False, minimum=1, maximum=2**63 - 1),
                  "session_id": Field("string", required=False, min_len=1, max_len=128,
                                      description="a call's or match.found's session_id"),
                  "room": Field("string", required=False, pattern=ROOM, description="a show"),
              }),
              ok=201, repeat=200, idempotent=True),
    ]
