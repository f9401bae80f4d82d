"""The typed answers of /api/openapi.json are the server's real answers: a user's way through
register, verify, login, refresh, profile, a room and its tokens, each answer validated against the
schema the document gives its operation (``control_api/responses/``); then the social graph, chat and
notifications, checked by the ``conformance`` fixture (tests/control_api/conformance.py)."""

from __future__ import annotations

from typing import Any

import jsonschema_rs  # installed with schemathesis

from control_api.app import all_routes
from control_api.openapi import document
from control_api.responses import social
from tests.control_api.conformance import Conformance
from tests.control_api.conftest import Api
from tests.control_api.test_profiles import tiny_png

DOC = document(all_routes())


def check(method: str, path: str, status: int, body: Any) -> None:
    op = DOC["paths"][path][method.lower()]
    schema = op["responses"][str(status)]["content"]["application/json"]["schema"]
    assert schema, f"{method} {path} has no typed answer"
    validator = jsonschema_rs.validator_for({**schema, "components": DOC["components"]})
    errors = [f"{e.instance_path}: {e.message}" for e in validator.iter_errors(body)]
    assert not errors, (method, path, body, errors)


async def test_answers_conform_to_the_document(api: Api) -> None:
    email, password = "typed@example.com", "typed-password"
    status, body = await api.call("POST", "/auth/register", json={"email": email, "password": password})
    check("POST", "/auth/register", status, body)
    status, body = await api.call("POST", "/auth/verify", json={"email": email, "code": api.outbox.last_code(email)})
    check("POST", "/auth/verify", status, body)
    status, body = await api.call("POST", "/auth/verify/resend", json={"email": email})
    check("POST", "/auth/verify/resend", status, body)
    status, tokens = await api.call("POST", "/auth/login", json={"email": email, "password": password})
    check("POST", "/auth/login", status, tokens)
    status, tokens = await api.call("POST", "/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    check("POST", "/auth/refresh", status, tokens)
    me = {"Authorization": f"Bearer {tokens['access_token']}"}
    status, body = await api.call("GET", "/me", headers=me)
    check("GET", "/me", status, body)  # no profile yet: nulls where the schema allows them
    status, body = await api.call("PATCH", "/me/profile", headers=me,
                                  json={"pseudo": "typed", "birth_date": "1990-01-01", "bio": "hi"})
    check("PATCH", "/me/profile", status, body)
    other = await api.user("other")
    status, body = await api.call("GET", f"/users/{other.id}", headers=me)
    check("GET", "/users/{user_id}", status, body)
    status, room = await api.call("POST", "/rooms", headers=me, json={"title": "typed show"})
    check("POST", "/rooms", status, room)
    status, body = await api.call("GET", f"/rooms/{room['room']}", headers=me)
    check("GET", "/rooms/{room}", status, body)
    for role in ("broadcaster", "viewer"):
        status, body = await api.call("POST", f"/rooms/{room['room']}/token", headers=me, json={"role": role})
        check("POST", "/rooms/{room}/token", status, body)
    status, body = await api.call("POST", "/ws-token", headers=me)
    check("POST", "/ws-token", status, body)
    status, body = await api.call("POST", f"/users/{other.id}/invite", headers=me, json={"room": room["room"]})
    check("POST", "/users/{user_id}/invite", status, body)


def test_a_wrong_answer_is_caught() -> None:
    """The check itself bites: a token answer without its grants does not conform."""
    try:
        check("POST", "/rooms/{room}/token", 200, {"token": "t", "expires_at": 1})
    except AssertionError as exc:
        assert "grants" in str(exc)
    else:
        raise AssertionError("a token answer without grants passed")


async def test_social_chat_and_notification_answers_conform(api: Api, conformance: Conformance) -> None:
    """Every operation typed in control_api/responses/social.py answers at least once (each answer is
    validated at teardown), with the shapes' variants: nulls, a reused 1:1 (200), a private attachment
    seen by its owner and by a receiver, and each kind of notification these steps make."""
    for path in ("/", "/openapi.json"):
        assert (await api.call("GET", path))[0] == 200
    ada, bob, cyd, dee = (await api.user("ada"), await api.user("bob"), await api.user(), await api.user("dee"))
    assert (await api.call("POST", "/auth/forgot", json={"email": ada.email}))[0] == 202
    assert (await api.call("POST", f"/users/{ada.id}/follow", bob))[1]["status"] == "pending"
    assert (await api.call("POST", f"/users/{ada.id}/follow", cyd))[1]["status"] == "pending"
    assert len((await api.call("GET", "/me/follow-requests", ada))[1]["items"]) == 2
    assert (await api.call("POST", f"/me/follow-requests/{bob.id}/accept", ada))[1]["status"] == "accepted"
    assert (await api.call("POST", f"/me/follow-requests/{cyd.id}/decline", ada))[1]["status"] == "declined"
    assert (await api.call("POST", f"/users/{bob.id}/follow", ada))[1]["status"] == "pending"
    assert [p["id"] for p in (await api.call("GET", "/me/followers", ada))[1]["items"]] == [bob.id]
    assert [p["id"] for p in (await api.call("GET", "/me/follows", bob))[1]["items"]] == [ada.id]
    assert (await api.call("POST", f"/users/{ada.id}/like", bob))[1]["total_likes"] == 1
    assert (await api.call("POST", f"/users/{dee.id}/block", cyd))[1]["blocked"] is True
    assert (await api.call("GET", "/me/blocks", cyd))[1]["people"] == [{"id": dee.id, "pseudo": "dee"}]
    assert [p["id"] for p in (await api.call("GET", "/search/users", ada, params={"q": "bo"}))[1]["items"]] == [bob.id]

    status, direct = await api.call("POST", "/conversations", ada, json={"members": [bob.id]})
    assert status == 201 and (await api.call("POST", "/conversations", ada, json={"members": [bob.id]}))[0] == 200
    status, group = await api.call("POST", "/conversations", ada, json={"members": [bob.id], "title": "two"})
    assert status == 201 and (await api.call("POST", f"/conversations/{group['id']}/members", ada,
                                             json={"members": [dee.id]}))[0] == 200
    status, media = await api.call("POST", "/media", ada, data=tiny_png(), headers={"Content-Type": "image/png"})
    assert status == 201
    body = {"text": "", "attachments": [{"media_id": media["id"], "private": True}]}
    status, sent = await api.call("POST", f"/conversations/{direct['id']}/messages", ada, json=body)
    assert status == 201 and sent["attachments"][0]["url"]  # mine: its url
    status, page = await api.call("GET", f"/conversations/{direct['id']}/messages", bob, params={"limit": 1})
    assert page["items"][0]["attachments"][0]["url"] is None and page["next_cursor"] == sent["id"]
    assert (await api.call("GET", "/conversations", bob))[1]["unread_total"] == 1
    assert (await api.call("GET", f"/conversations/{direct['id']}", bob))[1]["unread"] == 1
    assert (await api.call("POST", f"/conversations/{direct['id']}/read", bob,
                           json={"message_id": sent["id"]}))[1]["last_read_id"] == sent["id"]
    status, room = await api.call("POST", "/rooms", ada, json={"title": "typed"})
    assert (await api.call("POST", f"/users/{bob.id}/invite", ada, json={"room": room["room"]}))[0] == 201
    assert (await api.call("GET", "/ice-servers", bob))[1]["ice_servers"] == []  # no TURN configured here

    kinds = {n["kind"] for n in (await api.call("GET", "/notifications", bob))[1]["items"]}
    assert kinds == {"welcome", "follow_accepted", "follow_request", "message", "live_invite"}, kinds
    kinds = {n["kind"] for n in (await api.call("GET", "/notifications", ada))[1]["items"]}
    assert kinds == {"welcome", "follow_request", "like"}, kinds
    assert (await api.call("POST", "/notifications/read", bob, json={}))[1] == {"unread": 0}

    staff_only = {("POST", "/moderation/friends/rebuild")}  # tests/control_api/test_social.py calls it
    assert set(social.RESPONSES) - staff_only <= conformance.checked, set(social.RESPONSES) - conformance.checked
