"""GET /api/ice-servers: the TURN credential a signed-in user gets is one coturn would accept."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable

from switchboard.settings import TurnSettings
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
    assert 0 < int(expiry) - time.time() <= 600
    expected = base64.b64encode(hmac.new(SECRET.encode(), relay["username"].encode(), hashlib.sha1).digest())
    assert relay["credential"] == expected.decode()
    assert body["ttl_s"] == 600


async def test_without_a_turn_host_the_list_is_empty(api: Api) -> None:
    user = await api.user()
    status, body = await api.call("GET", "/ice-servers", user)
    assert status == 200 and body["ice_servers"] == []


async def test_anonymous_callers_get_no_credential(make_api: Callable[..., Awaitable[Api]]) -> None:
    api = await make_api(turn=TurnSettings(host="turn.example.com"), turn_secret=SECRET)
    status, body = await api.call("GET", "/ice-servers")
    assert status == 401
    assert body["status"] == 401
