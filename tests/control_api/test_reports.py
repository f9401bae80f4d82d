"""Reports through HTTP: the three contexts, the closed reasons, one open report per context, the
review lifecycle (claim, action, dismiss) with its audit rows and the reporter's notification, the
claim race, and bad input that changes nothing."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from control_api.models import Report
from tests.control_api.conftest import Api
from tests.control_api.moderation import audit_rows, make_staff, paired, services, watched


async def _reports(api: Api) -> int:
    async with services(api).sessions() as session:
        from sqlalchemy import func, select

        return int(await session.scalar(select(func.count()).select_from(Report)) or 0)


async def test_three_contexts_and_one_open_report_per_context(api: Api, redis: Any) -> None:
    ann, bob = await api.user(), await api.user()
    ses = await paired(redis, ann, bob)
    status, live = await api.call("POST", "/reports", ann, json={
        "user_id": bob.id, "session_id": ses, "reason": "harassment", "comment": "insults"})
    assert status == 201, live
    assert (live["context"], live["user_id"], live["status"], live["comment"]) == ("live", bob.id, "open", "insults")
    # The same reporter, target and context again: the open report, not a second one.
    status, again = await api.call("POST", "/reports", ann, json={"user_id": bob.id, "session_id": ses,
                                                                   "reason": "other"})
    assert (status, again["id"]) == (200, live["id"])
    status, profile = await api.call("POST", "/reports", ann, json={"user_id": bob.id, "reason": "spam_scam"})
    assert status == 201 and profile["context"] == "profile" and profile["id"] != live["id"]
    room = await watched(api, redis, bob, ann)
    status, show = await api.call("POST", "/reports", ann, json={"user_id": bob.id, "room": room,
                                                                  "reason": "hate_violence"})
    assert status == 201 and show["context"] == "live"
    # A message: its sender is the target; only a member of the conversation may report it.
    _, conv = await api.call("POST", "/conversations", bob, json={"members": [ann.id]})
    _, msg = await api.call("POST", f"/conversations/{conv['id']}/messages", bob, json={"text": "buy my coins"})
    status, by_msg = await api.call("POST", "/reports", ann, json={"message_id": msg["id"], "reason": "spam_scam"})
    assert status == 201 and (by_msg["context"], by_msg["user_id"], by_msg["message_id"]) == ("message", bob.id,
                                                                                                msg["id"])
    eve = await api.user()
    assert (await api.call("POST", "/reports", eve, json={"message_id": msg["id"], "reason": "other"}))[0] == 404


async def test_bad_reports_change_nothing(api: Api) -> None:
    ann, bob = await api.user(), await api.user()
    before = await _reports(api)
    bad = [
        ({"user_id": bob.id, "reason": "rude"}, 422),  # not one of the reasons
        ({"user_id": ann.id, "reason": "other"}, 422),  # oneself
        ({"user_id": str(uuid.uuid4()), "reason": "other"}, 404),  # nobody
        ({"user_id": bob.id, "reason": "other", "comment": "x" * 1001}, 422),
        ({"user_id": bob.id, "reason": "other", "room": "show-1", "session_id": "s"}, 422),  # two contexts
        ({"reason": "other"}, 422),  # no target
        ({"message_id": 2**40, "reason": "other"}, 404),
    ]
    for body, code in bad:
        status, problem = await api.call("POST", "/reports", ann, json=body)
        assert status == code, (body, problem)
        assert problem["status"] == code and problem["detail"]
    assert (await api.call("POST", "/reports", json={"user_id": bob.id, "reason": "other"}))[0] == 401
    assert await _reports(api) == before


async def test_live_reports_need_a_session_or_show_the_reporter_was_in(api: Api, redis: Any) -> None:
    """A match (the matchmaker's record), a call (the node's, in test_live_reports_on_a_node) or a show
    (the API's room, its viewers as nodes record them): unknown is a 404, a reporter who was not in it
    a 403, a target who was not in it a 422; none of them stores anything. Without ``user_id`` the
    target is the other party, or the show's owner."""
    ann, bob, eve, host = await api.user(), await api.user(), await api.user(), await api.user()
    ses = await paired(redis, ann, bob)
    room = await watched(api, redis, host, ann)
    status, none = await api.call("POST", "/rooms", eve, json={})  # a room nobody ever joined
    assert status == 201
    before = await _reports(api)
    bad = [
        (ann, {"user_id": bob.id, "session_id": "ses_never"}, 404, "no call or random-chat session"),
        (ann, {"user_id": host.id, "room": "show-never"}, 404, "no room"),
        (eve, {"user_id": bob.id, "session_id": ses}, 403, "not in this session"),
        (eve, {"session_id": ses}, 403, "not in this session"),
        (ann, {"user_id": eve.id, "session_id": ses}, 422, "user_id"),
        (eve, {"user_id": host.id, "room": room}, 403, "not in this show"),
        (ann, {"user_id": eve.id, "room": room}, 422, "user_id"),
        (ann, {"room": none["room"]}, 403, "not in this show"),
    ]
    for who, body, code, says in bad:
        status, problem = await api.call("POST", "/reports", who, json={**body, "reason": "other"})
        assert (status, problem["status"]) == (code, code), (body, problem)
        assert problem["type"] and says in str(problem), (body, problem)
    assert await _reports(api) == before
    status, live = await api.call("POST", "/reports", bob, json={"session_id": ses, "reason": "harassment"})
    assert status == 201 and live["user_id"] == ann.id, live
    status, show = await api.call("POST", "/reports", ann, json={"room": room, "reason": "hate_violence"})
    assert status == 201 and show["user_id"] == host.id, show
    status, back = await api.call("POST", "/reports", host, json={"user_id": ann.id, "room": room,
                                                                   "reason": "spam_scam"})
    assert status == 201 and back["user_id"] == ann.id, back  # the owner reports a viewer


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(comment=st.text(max_size=1200))
async def test_any_comment_is_stored_or_refused_cleanly(api: Api, redis: Any, comment: str) -> None:
    if not hasattr(api, "pair"):
        api.pair = (await api.user(), await api.user())  # type: ignore[attr-defined]
    ann, bob = api.pair  # type: ignore[attr-defined]
    room = await watched(api, redis, bob, ann)  # a show of its own: a new report each time
    status, body = await api.call("POST", "/reports", ann, json={"user_id": bob.id, "reason": "other",
                                                                  "room": room, "comment": comment})
    assert status in (201, 400, 422), body
    if status == 201:
        assert body["comment"] == comment


async def test_lifecycle_with_audit_rows_and_the_reporters_notification(api: Api) -> None:
    ann, bob, mod = await api.user(), await api.user(), await make_staff(api, await api.user())
    _, report = await api.call("POST", "/reports", ann, json={"user_id": bob.id, "reason": "harassment"})
    rid = report["id"]
    assert (await api.call("GET", "/moderation/reports", ann))[0] == 403  # a token says "user": Postgres decides
    assert (await api.call("POST", f"/moderation/reports/{rid}/claim", ann))[0] == 403

    status, page = await api.call("GET", f"/moderation/reports?status=open&reason=harassment&user_id={bob.id}", mod)
    assert status == 200 and [r["id"] for r in page["items"]] == [rid]
    status, claimed = await api.call("POST", f"/moderation/reports/{rid}/claim", mod)
    assert status == 200 and (claimed["status"], claimed["claimed_by"]) == ("in_review", mod.id)
    status, detail = await api.call("GET", f"/moderation/reports/{rid}", mod)
    assert status == 200 and detail["context_detail"]["target"]["user_id"] == bob.id and detail["clip"] is None
    status, done = await api.call("POST", f"/moderation/reports/{rid}/action", mod,
                                  json={"sanction": {"kind": "mute", "duration": "24h"}, "note": "clear insults"})
    assert status == 200, done
    assert done["status"] == "actioned" and done["sanction_id"]
    # Closed: no second action, no dismiss, no claim; nothing changes.
    for verb, body in (("action", {"sanction": {"kind": "ban"}}), ("dismiss", {}), ("claim", None)):
        status, problem = await api.call("POST", f"/moderation/reports/{rid}/{verb}", mod, json=body)
        assert status == 409 and "actioned" in problem["detail"], problem
    status, history = await api.call("GET", f"/moderation/accounts/{bob.id}/sanctions", mod)
    assert [s["kind"] for s in history["items"]] == ["mute"]  # one sanction only

    actions = [e.action for e in await audit_rows(api, subject=str(rid))]
    assert actions == ["report.claimed", "report.actioned"]
    assert [e.action for e in await audit_rows(api, subject=bob.id)] == ["sanction.mute"]
    _, notes = await api.call("GET", "/notifications", ann)
    outcome = [n for n in notes["items"] if n["kind"] == "report_outcome"]
    assert outcome and outcome[0]["data"] == {"report_id": rid, "outcome": "actioned"}  # no sanction details

    # Dismissing an open report (unclaimed) works too and tells the reporter.
    _, other = await api.call("POST", "/reports", ann, json={"user_id": bob.id, "reason": "other"})
    status, dismissed = await api.call("POST", f"/moderation/reports/{other['id']}/dismiss", mod, json={})
    assert status == 200 and dismissed["status"] == "dismissed"
    assert [e.action for e in await audit_rows(api, subject=str(other["id"]))] == ["report.dismissed"]
    # After closing, the reporter may report the same context again (a new report).
    status, fresh = await api.call("POST", "/reports", ann, json={"user_id": bob.id, "reason": "other"})
    assert status == 201 and fresh["id"] != other["id"]


async def test_claim_race_exactly_one_wins(api: Api) -> None:
    ann, bob = await api.user(), await api.user()
    mods = [await make_staff(api, await api.user()) for _ in range(4)]
    _, report = await api.call("POST", "/reports", ann, json={"user_id": bob.id, "reason": "spam_scam"})
    answers = await asyncio.gather(*(api.call("POST", f"/moderation/reports/{report['id']}/claim", m) for m in mods))
    statuses = sorted(status for status, _ in answers)
    assert statuses == [200, 409, 409, 409], answers
    winner = next(mods[i] for i, (status, _) in enumerate(answers) if status == 200)
    loser = next(mods[i] for i, (status, _) in enumerate(answers) if status == 409)
    # The others see who holds it, and may not close it under them.
    status, problem = await api.call("POST", f"/moderation/reports/{report['id']}/dismiss", loser, json={})
    assert status == 409 and winner.id in problem["detail"]
    assert len(await audit_rows(api, subject=str(report["id"]))) == 1


async def test_list_pages_with_a_cursor_and_filters_by_date(api: Api) -> None:
    ann, mod = await api.user(), await make_staff(api, await api.user())
    targets = [await api.user() for _ in range(3)]
    for t in targets:
        await api.call("POST", "/reports", ann, json={"user_id": t.id, "reason": "other"})
    status, first = await api.call("GET", "/moderation/reports?limit=2&status=open", mod)
    assert status == 200 and len(first["items"]) == 2 and first["next_cursor"]
    _, second = await api.call("GET", f"/moderation/reports?limit=2&status=open&before={first['next_cursor']}", mod)
    ids = [r["id"] for r in first["items"] + second["items"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)
    _, none = await api.call("GET", "/moderation/reports?since=2999-01-01", mod)
    assert none["items"] == []
    assert (await api.call("GET", "/moderation/reports?status=closed", mod))[0] == 422


ANY_TEXT = st.text(st.characters(codec=None, categories=None, exclude_categories=()), max_size=140)
"""Arbitrary unicode, lone surrogates included."""


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(session_id=ANY_TEXT)
async def test_any_session_id_is_reported_or_refused_cleanly(api: Api, redis: Any, session_id: str) -> None:
    """A live report's ``session_id`` goes to Postgres and, as a clip request, to every node: whatever
    it holds, the answer is a report or a 4xx problem, never a 500 (no node carries it: no clip).
    Redis is asked for it as a match and as a call: one the matchmaker made under that id (when
    Redis can hold the id) is found, and none is a 404."""
    if not hasattr(api, "pair"):
        api.pair = (await api.user(), await api.user())  # type: ignore[attr-defined]
    ann, bob = api.pair  # type: ignore[attr-defined]
    status, body = await api.call("POST", "/reports", ann, json={"user_id": bob.id, "reason": "other",
                                                                  "session_id": session_id})
    assert status in (200, 400, 404, 422), body  # 200: an id an earlier example paired under
    try:
        session_id.encode()
    except UnicodeEncodeError:
        return
    await paired(redis, ann, bob, session_id)
    status, body = await api.call("POST", "/reports", ann, json={"user_id": bob.id, "reason": "other",
                                                                  "session_id": session_id})
    assert status in (200, 201, 400, 422), body
    if status in (200, 201):
        assert body["session_id"] == session_id
