"""Room and socket tokens through HTTP: grants per role, hidden only for moderators and audited,
and access tokens that a node refuses."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from control_api.errors import ValidationFailed
from control_api.models import Account, AuditEntry, Role
from control_api.rooms import grants_for, routes
from control_api.services import SERVICES
from switchboard.errors import TokenError
from switchboard.keyspace import premium_tier
from switchboard.tokens import TokenVerifier
from tests.control_api.conftest import ON_CLUSTER_TOO, Api, User


def test_grants_per_role() -> None:
    assert grants_for("u", "r", "broadcaster").publish is True
    viewer = grants_for("u", "r", "viewer")
    assert (viewer.publish, viewer.subscribe, viewer.hidden) == (False, True, False)
    hidden = grants_for("u", "r", "hidden")
    assert hidden.hidden and hidden.moderate and not hidden.publish
    with pytest.raises(ValueError):
        grants_for("u", "r", "owner")


async def new_room(api: Api, owner: User, **body: Any) -> str:
    status, answer = await api.call("POST", "/rooms", owner, json=body)
    assert status == 201, answer
    return str(answer["room"])


@ON_CLUSTER_TOO
async def test_room_tokens_verify_on_a_node(api: Api) -> None:
    user = await api.user()
    verifier = TokenVerifier(api.key.public_key(), issuer="switchboard")
    room = await new_room(api, user)
    status, body = await api.call("POST", f"/rooms/{room}/token", user, json={"role": "broadcaster"})
    assert status == 200 and body["grants"]["verified"] is True
    grants = verifier.verify(body["token"])
    assert (grants.sub, grants.room, grants.publish, grants.hidden, grants.verified) == (
        user.id, room, True, False, True)
    status, body = await api.call("POST", "/ws-token", user)
    grants = verifier.verify(body["token"])
    assert grants.sub == user.id and grants.room is None and grants.verified is True
    with pytest.raises(TokenError):
        verifier.verify(user.access)  # an API access token never opens a node
    assert (await api.call("POST", f"/rooms/{room}/token", json={"role": "viewer"}))[0] == 401
    assert (await api.call("POST", "/rooms/bad room/token", user, json={}))[0] == 422


async def test_hidden_grant_only_for_moderators_and_audited(api: Api) -> None:
    user = await api.user()
    status, body = await api.call("POST", "/rooms/call-9/token", user, json={"role": "hidden"})
    assert status == 403
    services = api.app._subapps[0][SERVICES]  # type: ignore[attr-defined]
    async with services.sessions() as session, session.begin():
        account = await session.get(Account, uuid.UUID(user.id))
        assert account is not None
        account.role = Role.MODERATOR
    status, body = await api.call("POST", "/rooms/call-9/token", user, json={"role": "hidden"})
    assert status == 200 and body["grants"]["hidden"] is True
    grants = TokenVerifier(api.key.public_key(), issuer="switchboard").verify(body["token"])
    async with services.sessions() as session:
        entries = list(await session.scalars(select(AuditEntry).where(AuditEntry.action == "token.hidden")))
    assert len(entries) == 1 and entries[0].detail["jti"] == grants.jti and entries[0].subject == "call-9"


@ON_CLUSTER_TOO
async def test_live_invite_notifies_and_respects_blocks(api: Api) -> None:
    host, guest, blocker = await api.user("host"), await api.user("guest"), await api.user("blocker")
    room = await new_room(api, host)
    status, body = await api.call("POST", f"/users/{guest.id}/invite", host, json={"room": room})
    assert status == 201
    notes = (await api.call("GET", "/notifications?unread_only=true", guest))[1]
    invites = [n["data"]["room"] for n in notes["items"] if n["kind"] == "live_invite"]
    assert invites == [room]
    await api.call("POST", f"/users/{host.id}/block", blocker)
    assert (await api.call("POST", f"/users/{blocker.id}/invite", host, json={"room": room}))[0] == 404
    # An invitation names a room of one's own: never someone else's, never a name nobody owns.
    assert (await api.call("POST", f"/users/{host.id}/invite", guest, json={"room": room}))[0] == 404
    assert (await api.call("POST", f"/users/{guest.id}/invite", host, json={"room": "show-7"}))[0] == 404
    status, body = await api.call("POST", "/notifications/read", guest, json={})
    assert body["unread"] == 0


@ON_CLUSTER_TOO
async def test_ws_token_carries_premium_from_the_account(api: Api) -> None:
    user = await api.user()
    verifier = TokenVerifier(api.key.public_key(), issuer="switchboard")
    status, body = await api.call("POST", "/ws-token", user)
    assert status == 200 and body["grants"]["premium"] is False
    assert verifier.verify(body["token"]).premium is False
    services = api.app._subapps[0][SERVICES]  # type: ignore[attr-defined]
    async with services.sessions() as session, session.begin():
        account = await session.get(Account, uuid.UUID(user.id))
        assert account is not None
        account.premium = True
    # What payments writes with every change of tier (Payments.publish_premium): the mark, read with
    # the revocation epoch on every request, whatever the account cache still holds.
    await services.redis.set(premium_tier(user.id), "1")
    # The same access token (signed while the account was not premium): the flag is read afresh.
    status, body = await api.call("POST", "/ws-token", user)
    assert status == 200 and body["grants"]["premium"] is True
    grants = verifier.verify(body["token"])
    assert grants.premium is True and grants.sub == user.id


# --- owned rooms (issue 12, item 1: show hijack; item 4: unverified accounts do not broadcast) ---------

NAME = re.compile(r"show-[a-z2-7]{26}")
"""``show-`` + 128 bits in base32: 26 characters of 5 bits (the last one carries 3)."""


async def test_rooms_are_named_by_the_server_and_owned_by_their_creator(api: Api) -> None:
    owner, other = await api.user(), await api.user()
    status, room = await api.call("POST", "/rooms", owner, json={"title": "Friday night jazz 🎷"})
    assert status == 201 and NAME.fullmatch(room["room"]), room
    assert (room["owner"], room["kind"], room["title"]) == (owner.id, "show", "Friday night jazz 🎷")
    assert room["watch_path"] == f"/watch/{room['room']}"
    status, seen = await api.call("GET", f"/rooms/{room['room']}", other)
    assert status == 200 and seen == room
    assert (await api.call("GET", "/rooms/show-nobodys", other))[0] == 404
    # 64 fresh names: all different, and none shares even a 12-character prefix (128 random bits each).
    names = [await new_room(api, owner) for _ in range(64)]
    assert all(NAME.fullmatch(n) for n in names)
    assert len({n[:17] for n in names}) == len(names)


async def test_a_client_cannot_choose_the_name_nor_claim_one_by_asking_for_a_token(api: Api) -> None:
    squatter, victim = await api.user(), await api.user()
    # The predictable name of the old broadcast page, and any name one might want to take first.
    wanted = f"show-{victim.id[:8]}"
    for body in ({"room": wanted}, {"name": wanted}, {"title": "ok", "room": wanted}):
        status, problem = await api.call("POST", "/rooms", squatter, json=body)
        assert status == 422 and problem["errors"][0]["detail"] == "is not a known field", problem
    status, created = await api.call("POST", "/rooms", squatter, json={"title": wanted})
    assert status == 201 and created["room"] != wanted and created["title"] == wanted
    for role in ("broadcaster", "viewer"):
        status, problem = await api.call("POST", f"/rooms/{wanted}/token", squatter, json={"role": role})
        assert status == 404 and "POST /api/rooms" in problem["detail"], (role, problem)


async def test_a_stranger_gets_no_broadcaster_token_for_someone_elses_room(api: Api) -> None:
    owner, stranger = await api.user(), await api.user()
    room = await new_room(api, owner)
    status, problem = await api.call("POST", f"/rooms/{room}/token", stranger, json={"role": "broadcaster"})
    assert status == 403 and problem["title"] == "Forbidden" and "owner" in problem["detail"]
    assert problem["instance"] == f"/api/rooms/{room}/token"
    status, body = await api.call("POST", f"/rooms/{room}/token", stranger, json={"role": "viewer"})
    assert status == 200 and body["grants"]["publish"] is False and body["grants"]["subscribe"] is True
    assert (await api.call("POST", f"/rooms/{room}/token", stranger, json={}))[1]["grants"]["publish"] is False
    status, body = await api.call("POST", f"/rooms/{room}/token", owner, json={"role": "broadcaster"})
    assert status == 200 and body["grants"]["publish"] is True


async def test_blocked_people_do_not_find_each_others_rooms(api: Api) -> None:
    owner, fan, pest = await api.user(), await api.user(), await api.user()
    room = await new_room(api, owner)
    await api.call("POST", f"/users/{pest.id}/block", owner)
    await api.call("POST", f"/users/{owner.id}/block", fan)  # blocked the other way round
    for who in (pest, fan):
        assert (await api.call("GET", f"/rooms/{room}", who))[0] == 404
        assert (await api.call("POST", f"/rooms/{room}/token", who, json={"role": "viewer"}))[0] == 404


async def test_unverified_accounts_watch_but_never_broadcast(api: Api) -> None:
    owner = await api.user()
    room = await new_room(api, owner)
    email, password = "fresh@example.com", "fresh password 1"
    assert (await api.client.post("/api/auth/register", json={"email": email, "password": password})).status == 202
    login = await (await api.client.post("/api/auth/login", json={"email": email, "password": password})).json()
    fresh = User(login["user_id"], email, password, login["access_token"], login["refresh_token"])
    verifier = TokenVerifier(api.key.public_key(), issuer="switchboard")
    status, problem = await api.call("POST", "/rooms", fresh, json={})
    assert status == 403 and problem["detail"].startswith("verify your email first")
    status, body = await api.call("POST", f"/rooms/{room}/token", fresh, json={"role": "viewer"})
    assert status == 200 and verifier.verify(body["token"]).verified is False
    status, body = await api.call("POST", "/ws-token", fresh)
    assert status == 200 and body["grants"]["verified"] is False and verifier.verify(body["token"]).verified is False
    # An owner whose verification is gone (an email change, say) no longer broadcasts in their room.
    services = api.app._subapps[0][SERVICES]  # type: ignore[attr-defined]
    async with services.sessions() as session, session.begin():
        account = await session.get(Account, uuid.UUID(owner.id))
        assert account is not None
        account.email_verified = False
    status, problem = await api.call("POST", f"/rooms/{room}/token", owner, json={"role": "broadcaster"})
    assert status == 403 and problem["detail"].startswith("verify your email first")
    # Verified is read from the account now: the same access token, once verified again.
    async with services.sessions() as session, session.begin():
        account = await session.get(Account, uuid.UUID(owner.id))
        assert account is not None
        account.email_verified = True
    status, body = await api.call("POST", f"/rooms/{room}/token", owner, json={"role": "broadcaster"})
    assert status == 200 and verifier.verify(body["token"]).verified is True


async def test_titles_with_lone_surrogates_or_control_characters_are_refused(api: Api) -> None:
    owner = await api.user()
    for title in ("\ud800", "a\udfffb", "nul\x00", "bell\x07", "x" * 101):
        status, problem = await api.call("POST", "/rooms", owner, data=json.dumps({"title": title}),
                                         headers={"Content-Type": "application/json"})
        # A lone surrogate makes the body unreadable (400, the shared check); the others are invalid (422).
        expected = 400 if any(0xD800 <= ord(c) <= 0xDFFF for c in title) else 422
        assert status == expected and problem["errors"][0]["field"] == "title", (title, problem)


@given(st.text(max_size=120))
def test_a_title_is_either_refused_or_storable(title: str) -> None:
    body = next(r.body for r in routes() if (r.method, r.path) == ("POST", "/rooms"))
    assert body is not None
    try:
        parsed = body.parse({"title": title})
    except ValidationFailed as exc:
        assert set(exc.fields) == {"title"}
        return
    assert parsed["title"] == title and len(title) <= 100
    title.encode("utf-8")  # no lone surrogate: Postgres (asyncpg) stores it
    assert not any(ord(c) < 0x20 or c == "\x7f" for c in title)
