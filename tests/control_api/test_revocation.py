"""Item 5 of issue 12: a ban, a deletion, a logout everywhere or a password reset/change ends every
live access token at once (the per-account epoch in Redis), tells the nodes, and a token minted
after the revocation (even in the same second) is alive."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest

from control_api.services import SERVICES
from switchboard.keyspace import SANCTIONS_CHANNEL, token_epoch
from tests.control_api.conftest import ON_CLUSTER_TOO, Api, User


@pytest.fixture
async def sanctions(redis: Any) -> AsyncIterator[Any]:
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(SANCTIONS_CHANNEL)
    yield pubsub
    await pubsub.aclose()


async def _next_notice(pubsub: Any) -> dict[str, Any]:
    async with asyncio.timeout(10):
        while True:
            message = await pubsub.get_message(timeout=1.0)
            if message is not None:
                return json.loads(message["data"])


async def _login(api: Api, user: User, password: str | None = None) -> str:
    login = {"email": user.email, "password": password or user.password}
    status, body = await api.call("POST", "/auth/login", json=login)
    assert status == 200, body
    return str(body["access_token"])


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _assert_revoked(api: Api, token: str) -> None:
    """Refused on every kind of door: reads, writes, room/socket tokens, TURN."""
    for method, path, body in (("GET", "/me", None), ("POST", "/ws-token", None),
                               ("POST", "/rooms/r1/token", {"role": "viewer"}), ("GET", "/ice-servers", None),
                               ("PATCH", "/me/profile", {"bio": "still here"})):
        status, answer = await api.call(method, path, headers=_bearer(token), json=body)
        assert status == 401, (path, answer)
        assert answer["title"] == "Not authenticated" and "revoked" in answer["detail"], answer


@ON_CLUSTER_TOO
async def test_logout_everywhere_ends_every_live_token_and_a_new_login_lives(
    api: Api, redis: Any, sanctions: Any,
) -> None:
    user = await api.user()
    phone = await _login(api, user)  # a second device
    assert (await api.call("GET", "/me", user))[0] == 200
    status, _ = await api.call("POST", "/auth/logout-everywhere", user)
    assert status == 204
    epoch = int(await redis.get(token_epoch(user.id)))
    assert time.time() >= epoch  # the answer came once the epoch second had begun
    assert await _next_notice(sanctions) == {"user": user.id, "kind": "revoke"}
    for token in (user.access, phone):
        await _assert_revoked(api, token)
    assert (await api.call("POST", "/auth/refresh", json={"refresh_token": user.refresh}))[0] == 401
    fresh = await _login(api, user)
    assert (await api.call("GET", "/me", headers=_bearer(fresh)))[0] == 200
    status, body = await api.call("POST", "/auth/logout-everywhere")
    assert status == 401 and body["status"] == 401  # it needs a signed-in caller


@ON_CLUSTER_TOO
async def test_password_reset_and_change_end_live_tokens(api: Api, sanctions: Any) -> None:
    user = await api.user()
    assert (await api.call("POST", "/auth/forgot", json={"email": user.email}))[0] == 202
    code = api.outbox.last_code(user.email)
    status, _ = await api.call("POST", "/auth/reset",
                               json={"email": user.email, "code": code, "new_password": "reset-password-1"})
    assert status == 204
    assert await _next_notice(sanctions) == {"user": user.id, "kind": "revoke"}
    await _assert_revoked(api, user.access)
    fresh = await _login(api, user, "reset-password-1")
    assert (await api.call("GET", "/me", headers=_bearer(fresh)))[0] == 200

    status, _ = await api.call("POST", "/me/password", headers=_bearer(fresh),
                               json={"current_password": "reset-password-1", "new_password": "changed-password-2"})
    assert status == 204
    assert await _next_notice(sanctions) == {"user": user.id, "kind": "revoke"}
    await _assert_revoked(api, fresh)
    assert (await api.call("GET", "/me", headers=_bearer(await _login(api, user, "changed-password-2"))))[0] == 200


@ON_CLUSTER_TOO
async def test_deletion_ends_live_tokens(api: Api, sanctions: Any) -> None:
    user, other = await api.user(pseudo="leaving"), await api.user(pseudo="staying")
    assert (await api.call("DELETE", "/me", user, json={"password": user.password}))[0] == 204
    assert await _next_notice(sanctions) == {"user": user.id, "kind": "revoke"}
    await _assert_revoked(api, user.access)
    status, _ = await api.call("POST", f"/users/{other.id}/like", user)
    assert status == 401


@ON_CLUSTER_TOO
async def test_a_ban_ends_live_tokens_on_every_door(api: Api, sanctions: Any) -> None:
    from control_api.models import Account, Role

    user, mod, friend = await api.user(pseudo="banned1"), await api.user(), await api.user(pseudo="friend1")
    services = api.app._subapps[0][SERVICES]  # type: ignore[attr-defined]
    async with services.sessions() as session, session.begin():
        account = await session.get(Account, uuid.UUID(mod.id))
        account.role = Role.MODERATOR
    mod.access = await _login(api, mod)
    status, conv = await api.call("POST", "/conversations", user, json={"members": [friend.id]})
    assert status == 201, conv
    status, _ = await api.call("POST", f"/moderation/accounts/{user.id}/sanctions", mod, json={"kind": "ban"})
    assert status == 201
    assert await _next_notice(sanctions) == {"user": user.id, "kind": "ban"}
    await _assert_revoked(api, user.access)
    status, _ = await api.call("POST", f"/conversations/{conv['id']}/messages", user, json={"text": "hi"})
    assert status == 401
    assert (await api.call("POST", f"/users/{friend.id}/like", user))[0] == 401
    assert (await api.call("GET", "/me", mod))[0] == 200  # nobody else is touched


@ON_CLUSTER_TOO
async def test_a_token_minted_in_the_second_of_a_revocation_lives_and_one_minted_before_dies(
    api: Api, redis: Any,
) -> None:
    services = api.app._subapps[0][SERVICES]  # type: ignore[attr-defined]
    user = await api.user()
    epoch = await services.revocations.revoke(uuid.UUID(user.id), wait=False)
    # Issued in the very second of the revocation (before it): dead.
    before = services.access.sign(uuid.UUID(user.id), services.access.verify(user.access).role, False,
                                  now=epoch - 0.5)
    assert jwt.decode(before, options={"verify_signature": False})["iat"] == epoch - 1
    status, body = await api.call("GET", "/me", headers=_bearer(before))
    assert status == 401 and "revoked" in body["detail"]
    # A login right after it (most likely within the same second): dated at the epoch, alive.
    fresh = await _login(api, user)
    assert jwt.decode(fresh, options={"verify_signature": False})["iat"] >= epoch
    assert (await api.call("GET", "/me", headers=_bearer(fresh)))[0] == 200
    assert int(await redis.get(token_epoch(user.id))) == epoch


async def test_an_unreadable_epoch_refuses_with_503_not_500(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    user = await api.user()
    services = api.app._subapps[0][SERVICES]  # type: ignore[attr-defined]

    async def down(*_: object) -> None:
        raise RedisConnectionError("redis is down")

    monkeypatch.setattr(services.revocations._reader, "mget", down)
    status, body = await api.call("GET", "/me", user)
    assert status == 503 and body["title"] == "Service unavailable"
