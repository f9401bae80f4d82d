"""Moderators' HTTP doors to sanctions: impose, lift, the active list, one account's history."""

from __future__ import annotations

from sqlalchemy import select

from control_api.audit import CURSOR, LIMIT
from control_api.errors import ValidationFailed
from control_api.http import Call, Reply, Route
from control_api.models import Sanction
from control_api.sanctions import DURATIONS, KINDS, active, as_json, impose, lift, sync_live
from control_api.schema import Field, Schema
from control_api.staff import require_staff

REASON = Field("string", required=False, max_len=1000)


def duration_of(body: dict) -> int | None:  # type: ignore[type-arg]
    """Seconds from ``duration`` (1h, 24h, 30d, permanent) or ``duration_s``; None: until lifted."""
    if "duration" in body and "duration_s" in body:
        raise ValidationFailed({"duration": "give duration or duration_s, not both"})
    if "duration" in body:
        return DURATIONS[body["duration"]]
    return body.get("duration_s")


async def _impose(call: Call) -> Reply:
    target, kind = call.params["account_id"], call.body["kind"]
    async with call.services.sessions() as session, session.begin():
        staff = await require_staff(session, call.me.user_id)
        sanction, notes = await impose(session, staff, target, kind, duration_of(call.body),
                                       call.body.get("reason", ""))
    await sync_live(call.services, target, kind, fresh=sanction, notes=notes)
    return Reply(as_json(sanction), 201)


async def _lift(call: Call) -> Reply:
    async with call.services.sessions() as session, session.begin():
        staff = await require_staff(session, call.me.user_id)
        sanction = await lift(session, staff, call.params["sanction_id"], call.body["reason"])
    await sync_live(call.services, sanction.account_id, sanction.kind)
    return Reply(as_json(sanction))


async def _list_sanctions(call: Call) -> Reply:
    q, limit = call.query, call.query.get("limit", 50)
    async with call.services.sessions() as session:
        await require_staff(session, call.me.user_id)
        stmt = select(Sanction)
        if q.get("active", True):
            stmt = stmt.where(active())
        if "kind" in q:
            stmt = stmt.where(Sanction.kind == q["kind"])
        if "before" in q:
            stmt = stmt.where(Sanction.id < q["before"])
        rows = list(await session.scalars(stmt.order_by(Sanction.id.desc()).limit(limit)))
    return Reply({"items": [as_json(s) for s in rows], "next_cursor": rows[-1].id if len(rows) == limit else None})


async def _history(call: Call) -> Reply:
    async with call.services.sessions() as session:
        await require_staff(session, call.me.user_id)
        rows = list(await session.scalars(
            select(Sanction).where(Sanction.account_id == call.params["account_id"]).order_by(Sanction.id.desc())
            .limit(200)))
    return Reply({"items": [as_json(s) for s in rows]})


def routes() -> list[Route]:
    account = Schema({"account_id": Field("uuid")})
    return [
        Route("POST", "/moderation/accounts/{account_id}/sanctions", _impose,
              "Impose a warning, mute or ban on an account (moderators); acts live on every node", "moderation",
              params=account,
              body=Schema({
                  "kind": Field("string", choices=KINDS),
                  "duration": Field("string", required=False, choices=tuple(DURATIONS),
                                    description="1h, 24h, 30d or permanent (a warning has none)"),
                  "duration_s": Field("integer", required=False, minimum=1, maximum=10 * 365 * 86400,
                                      description="seconds, instead of duration; absent: until lifted"),
                  "reason": REASON,
              }),
              ok=201, idempotent=True),
        Route("GET", "/moderation/accounts/{account_id}/sanctions", _history,
              "An account's sanctions, newest first, lifted and ended ones too (moderators)", "moderation",
              params=account),
        Route("POST", "/moderation/sanctions/{sanction_id}/lift", _lift,
              "Lift an active sanction with a reason (moderators)", "moderation",
              params=Schema({"sanction_id": Field("integer", minimum=1, maximum=2**63 - 1)}),
              body=Schema({"reason": Field("string", min_len=1, max_len=1000)})),
        Route("GET", "/moderation/sanctions", _list_sanctions,
              "Sanctions, newest first; active ones unless active=false (moderators)", "moderation",
              query=Schema({"active": Field("boolean", required=False), "kind": Field("string", required=False,
                                                                                       choices=KINDS),
                            "before": CURSOR, "limit": LIMIT})),
    ]
