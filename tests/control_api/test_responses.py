"""The typed answers of /api/openapi.json are the server's real answers: a user's way through
register, verify, login, refresh, profile, a room and its tokens, each answer validated against the
schema the document gives its operation (``control_api/responses/``)."""

from __future__ import annotations

from typing import Any

import jsonschema_rs  # installed with schemathesis

from control_api.app import all_routes
from control_api.openapi import document
from tests.control_api.conftest import Api

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
