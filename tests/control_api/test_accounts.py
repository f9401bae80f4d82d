"""Accounts end to end through HTTP: register, verify, login, refresh rotation, logout, forgot/reset,
change password, deletion, and bans."""

from __future__ import annotations

from sqlalchemy import select

from control_api.models import Account
from control_api.social_models import Profile
from tests.control_api.conftest import Api


async def test_register_verify_login_and_me(api: Api) -> None:
    status, body = await api.call("POST", "/auth/register", json={"email": "Ann@Example.com", "password": "s3cret-pw"})
    assert status == 202 and body["status"].startswith("check your mail")
    status, body = await api.call("POST", "/auth/verify", json={"email": "ann@example.com", "code": "000000"})
    code = api.outbox.last_code("Ann@Example.com")
    if code != "000000":
        assert status == 401 and body["title"] == "Not authenticated"
    status, body = await api.call("POST", "/auth/verify", json={"email": "ann@example.com", "code": code})
    assert (status, body["email_verified"]) == (200, True)
    status, tokens = await api.call("POST", "/auth/login", json={"email": "ANN@example.com", "password": "s3cret-pw"})
    assert status == 200 and tokens["token_type"] == "Bearer" and tokens["expires_in"] == 900
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    status, me = await api.call("GET", "/me", headers=auth)
    assert status == 200 and me["email"] == "Ann@Example.com" and me["onboarding"]["complete"] is False
    status, notes = await api.call("GET", "/notifications", headers=auth)
    assert [n["kind"] for n in notes["items"]] == ["welcome"]


async def test_duplicate_email_and_bad_password(api: Api) -> None:
    user = await api.user()
    again = {"email": user.email.upper(), "password": "another-pw"}
    status, _ = await api.call("POST", "/auth/register", json=again)
    assert status == 202  # the same answer as for a new address (tests/control_api/test_enumeration.py)
    assert api.outbox.sent[-1][0] == user.email and "already has one" in api.outbox.sent[-1][2]
    status, _ = await api.call("POST", "/auth/login", json={"email": user.email, "password": "another-pw"})
    assert status == 401  # the taken account is untouched
    status, _ = await api.call("POST", "/auth/login", json={"email": user.email, "password": "wrong-password"})
    assert status == 401
    status, _ = await api.call("POST", "/auth/login", json={"email": "nobody@example.com", "password": "whatever"})
    assert status == 401


async def test_validation_names_every_bad_field(api: Api) -> None:
    status, body = await api.call("POST", "/auth/register", json={"email": "not-an-email", "password": "short",
                                                                  "extra": 1})
    assert status == 422
    assert {e["field"] for e in body["errors"]} == {"email", "password", "extra"}
    assert body["type"] == "about:blank" and body["title"] == "Invalid fields"
    status, body = await api.call("POST", "/auth/register", data=b"{not json", headers={"Content-Type":
                                                                                        "application/json"})
    assert status == 400
    status, body = await api.call("POST", "/auth/login", json={})
    assert status == 422 and {e["field"] for e in body["errors"]} == {"email", "password"}
    status, body = await api.call("GET", "/no/such/route")
    assert status == 404 and body["status"] == 404


async def test_refresh_rotates_and_reuse_revokes_the_family(api: Api) -> None:
    user = await api.user()
    status, first = await api.call("POST", "/auth/refresh", json={"refresh_token": user.refresh})
    assert status == 200 and first["refresh_token"] != user.refresh
    status, _ = await api.call("POST", "/auth/refresh", json={"refresh_token": user.refresh})
    assert status == 401  # the spent token came back: the family is revoked
    status, _ = await api.call("POST", "/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert status == 401


async def test_logout_revokes_refresh(api: Api) -> None:
    user = await api.user()
    status, _ = await api.call("POST", "/auth/logout", json={"refresh_token": user.refresh})
    assert status == 204
    status, _ = await api.call("POST", "/auth/refresh", json={"refresh_token": user.refresh})
    assert status == 401


async def test_forgot_and_reset_password(api: Api) -> None:
    user = await api.user()
    status, _ = await api.call("POST", "/auth/forgot", json={"email": "ghost@example.com"})
    assert status == 202
    status, _ = await api.call("POST", "/auth/forgot", json={"email": user.email})
    assert status == 202
    code = api.outbox.last_code(user.email)
    status, _ = await api.call("POST", "/auth/reset", json={"email": user.email, "code": code,
                                                            "new_password": "brand-new-pw"})
    assert status == 204
    status, _ = await api.call("POST", "/auth/reset", json={"email": user.email, "code": code,
                                                            "new_password": "again-new-pw"})
    assert status == 401  # a code is spent once
    assert (await api.call("POST", "/auth/refresh", json={"refresh_token": user.refresh}))[0] == 401
    assert (await api.call("POST", "/auth/login", json={"email": user.email, "password": user.password}))[0] == 401
    assert (await api.call("POST", "/auth/login", json={"email": user.email, "password": "brand-new-pw"}))[0] == 200


async def test_change_password(api: Api) -> None:
    user = await api.user()
    status, _ = await api.call("POST", "/me/password", user, json={"current_password": "wrong",
                                                                    "new_password": "changed-pw-1"})
    assert status == 401
    status, _ = await api.call("POST", "/me/password", user, json={"current_password": user.password,
                                                                    "new_password": "changed-pw-1"})
    assert status == 204
    assert (await api.call("POST", "/auth/refresh", json={"refresh_token": user.refresh}))[0] == 401
    assert (await api.call("POST", "/auth/login", json={"email": user.email, "password": "changed-pw-1"}))[0] == 200


async def test_ban_blocks_login_and_refresh(api: Api, database_url: str) -> None:
    user = await api.user()
    mod = await api.user()
    status, _ = await api.call("POST", f"/moderation/accounts/{user.id}/sanctions", mod, json={"kind": "ban"})
    assert status == 403  # not a moderator
    await _promote(api, mod.id)
    mod_login = await api.call("POST", "/auth/login", json={"email": mod.email, "password": mod.password})
    mod.access = mod_login[1]["access_token"]
    status, body = await api.call("POST", f"/moderation/accounts/{user.id}/sanctions", mod,
                                  json={"kind": "ban", "reason": "spam"})
    assert status == 201 and body["kind"] == "ban"
    status, body = await api.call("POST", "/auth/login", json={"email": user.email, "password": user.password})
    assert status == 403 and "banned" in body["detail"]
    status, _ = await api.call("POST", "/auth/refresh", json={"refresh_token": user.refresh})
    assert status in (401, 403)


async def test_ban_refused_at_refresh_even_with_a_live_token(api: Api) -> None:
    from control_api.models import Sanction
    from control_api.services import SERVICES

    user = await api.user()
    services = api.app._subapps[0][SERVICES]  # type: ignore[attr-defined]
    async with services.sessions() as session, session.begin():
        session.add(Sanction(account_id=__import__("uuid").UUID(user.id), kind="ban", reason="test"))
    status, body = await api.call("POST", "/auth/refresh", json={"refresh_token": user.refresh})
    assert status == 403 and "banned" in body["detail"]


async def test_delete_account_anonymizes(api: Api) -> None:
    user = await api.user(pseudo="deleteme")
    status, _ = await api.call("DELETE", "/me", user, json={"password": "wrong"})
    assert status == 401
    status, _ = await api.call("DELETE", "/me", user, json={"password": user.password})
    assert status == 204
    assert (await api.call("POST", "/auth/login", json={"email": user.email, "password": user.password}))[0] == 401
    assert (await api.call("POST", "/auth/refresh", json={"refresh_token": user.refresh}))[0] == 401
    from control_api.services import SERVICES

    services = api.app._subapps[0][SERVICES]  # type: ignore[attr-defined]
    async with services.sessions() as session:
        account = await session.scalar(select(Account).where(Account.id == __import__("uuid").UUID(user.id)))
        assert account is not None and account.deleted_at is not None and "example.com" not in account.email
        assert await session.get(Profile, account.id) is None
    # The email is free again.
    status, _ = await api.call("POST", "/auth/register", json={"email": user.email, "password": "fresh-start"})
    assert status == 202 and "verification" in api.outbox.sent[-1][1]


async def _promote(api: Api, user_id: str) -> None:
    import uuid

    from control_api.models import Role
    from control_api.services import SERVICES

    services = api.app._subapps[0][SERVICES]  # type: ignore[attr-defined]
    async with services.sessions() as session, session.begin():
        account = await session.get(Account, uuid.UUID(user_id))
        assert account is not None
        account.role = Role.MODERATOR


async def test_a_ban_acts_live_on_nodes_and_on_token_issue(api: Api, redis) -> None:  # type: ignore[no-untyped-def]
    import asyncio
    import json

    from switchboard.keyspace import SANCTIONS_CHANNEL, banned, token_epoch

    user, mod = await api.user(), await api.user()
    await _promote(api, mod.id)
    mod.access = (await api.call("POST", "/auth/login", json={"email": mod.email, "password": mod.password}))[1][
        "access_token"]
    room = (await api.call("POST", "/rooms", user, json={}))[1]["room"]
    assert (await api.call("POST", f"/rooms/{room}/token", user, json={"role": "viewer"}))[0] == 200
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(SANCTIONS_CHANNEL)
    try:
        status, _ = await api.call("POST", f"/moderation/accounts/{user.id}/sanctions", mod,
                                   json={"kind": "ban", "duration_s": 120})
        assert status == 201
        async with asyncio.timeout(10):
            notice = None
            while notice is None:
                notice = await pubsub.get_message(timeout=1.0)
        assert json.loads(notice["data"]) == {"user": user.id, "kind": "ban"}
    finally:
        await pubsub.aclose()
    assert 0 < await redis.ttl(banned(user.id)) <= 120
    assert int(await redis.get(token_epoch(user.id))) > 0
    # The user's access token is still within its 15 minutes: it is revoked, so it opens no node.
    status, body = await api.call("POST", f"/rooms/{room}/token", user, json={"role": "viewer"})
    assert status == 401 and "revoked" in body["detail"]
    status, body = await api.call("POST", "/ws-token", user)
    assert status == 401 and "revoked" in body["detail"]
    # A warning is not a ban: nothing is pushed for it.
    other = await api.user()
    status, _ = await api.call("POST", f"/moderation/accounts/{other.id}/sanctions", mod, json={"kind": "warning"})
    assert status == 201
    assert not await redis.exists(banned(other.id))
