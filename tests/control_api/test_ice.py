"""GET /api/ice-servers: the TURN credential a signed-in user gets is one coturn would accept, lives as
long as a room token, and goes only to accounts that may call (verified, not banned, not deleted)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest

from control_api.models import Account, Sanction
from control_api.services import SERVICES
from switchboard.errors import SettingsError
from switchboard.settings import Settings, TokenSettings, TurnSettings
from tests.control_api.conftest import Api

SECRET = "ice-test-secret-0123456789abcdef"


async def test_signed_in_user_gets_stun_and_turn_with_a_credential_for_them(
    make_api: Callable[..., Awaitable[Api]],
) -> None:
    api = await make_api(turn=TurnSettings(host="turn.example.com", ttl_s=600), turn_secret=SECRET)
    user = await api.user()
    status, body = await api.call("GET", "/ice-servers", user)
    assert status == 200, body
    stun, relay = body["ice_servers"]
    assert stun == {"urls": ["stun:turn.example.com:3478"]}
    assert relay["urls"] == ["turn:turn.example.com:3478?transport=udp", "turn:turn.example.com:3478?transport=tcp"]
    expiry, user_id = relay["username"].split(":")
    assert user_id == user.id
    assert 0 < int(expiry) - time.time() <= 300  # the room token lifetime bounds it (was 3600 s)
    expected = base64.b64encode(hmac.new(SECRET.encode(), relay["username"].encode(), hashlib.sha1).digest())
    assert relay["credential"] == expected.decode()
    assert body["ttl_s"] == 300


async def test_without_a_turn_host_the_list_is_empty(api: Api) -> None:
    user = await api.user()
    status, body = await api.call("GET", "/ice-servers", user)
    assert status == 200 and body["ice_servers"] == []


async def test_anonymous_callers_get_no_credential(make_api: Callable[..., Awaitable[Api]]) -> None:
    api = await make_api(turn=TurnSettings(host="turn.example.com"), turn_secret=SECRET)
    status, body = await api.call("GET", "/ice-servers")
    assert status == 401
    assert body["status"] == 401


async def test_the_credential_lives_as_long_as_a_room_token(make_api: Callable[..., Awaitable[Api]]) -> None:
    api = await make_api(turn=TurnSettings(host="turn.example.com"), turn_secret=SECRET)
    status, body = await api.call("GET", "/ice-servers", await api.user())
    assert status == 200 and body["ttl_s"] == TokenSettings().room_ttl_s
    expiry = int(body["ice_servers"][1]["username"].split(":")[0])
    assert 0 < expiry - time.time() <= TokenSettings().room_ttl_s


def test_settings_tie_the_turn_lifetime_to_room_tokens() -> None:
    assert Settings(tokens=TokenSettings(room_ttl_s=120)).turn.ttl_s == 120
    assert Settings(tokens=TokenSettings(room_ttl_s=120), turn=TurnSettings(ttl_s=60)).turn.ttl_s == 60
    with pytest.raises(SettingsError, match=r"turn\.ttl_s"):
        Settings(turn=TurnSettings(ttl_s=3600))


async def _unverified(api: Api) -> dict[str, str]:
    email, password = "unverified@example.com", "unverified-pw"
    assert (await api.call("POST", "/auth/register", json={"email": email, "password": password}))[0] == 202
    status, tokens = await api.call("POST", "/auth/login", json={"email": email, "password": password})
    assert status == 200
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def test_accounts_that_may_not_call_get_no_turn(make_api: Callable[..., Awaitable[Api]]) -> None:
    api = await make_api(turn=TurnSettings(host="turn.example.com"), turn_secret=SECRET)
    status, body = await api.call("GET", "/ice-servers", headers=await _unverified(api))
    assert status == 403 and body["title"] == "Forbidden" and "verify your email" in body["detail"]

    services = api.app._subapps[0][SERVICES]  # type: ignore[attr-defined]
    banned, deleted = await api.user(), await api.user()
    # Written straight to Postgres: the access tokens stay alive, only the account check can refuse.
    async with services.sessions() as session, session.begin():
        session.add(Sanction(account_id=uuid.UUID(banned.id), kind="ban", reason="test"))
        account = await session.get(Account, uuid.UUID(deleted.id))
        account.deleted_at = datetime.now(UTC)
    status, body = await api.call("GET", "/ice-servers", banned)
    assert status == 403 and "banned" in body["detail"]
    status, body = await api.call("GET", "/ice-servers", deleted)
    assert status == 403 and "deleted" in body["detail"]
    # Through the public doors, a ban or deletion revokes the token itself first.
    gone = await api.user()
    assert (await api.call("DELETE", "/me", gone, json={"password": gone.password}))[0] == 204
    status, body = await api.call("GET", "/ice-servers", gone)
    assert status == 401 and "revoked" in body["detail"]
