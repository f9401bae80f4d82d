"""Tokens through the SDK: the access token and the socket's token are refreshed before they expire;
closed objects refuse calls."""

from __future__ import annotations

import asyncio

import pytest

from switchboard_client import ApiClient, ApiError, ClosedError, NodeClient, NodeToken
from tests.client.conftest import Register
from tests.e2e.browser import Up

pytestmark = pytest.mark.slow


async def test_access_and_socket_tokens_are_refreshed(up: Up, register: Register) -> None:
    email, password = await register("refresher")
    # A margin longer than any token's life: every use refreshes (what a 14-minute-old login does).
    async with ApiClient(up.base, refresh_margin_s=100_000) as api:
        first = await api.login(email, password)
        room = (await api.create_room()).room
        assert api.login_state.refresh_token != first.refresh_token  # refreshed before the call
        assert (await api.room_token(room, "broadcaster")).grants["publish"] is True
        async with NodeClient(up.base, api.token_source(room, "broadcaster"), refresh_margin_s=100_000) as node:
            for _ in range(150):  # the node client refreshes about once a second with this margin
                if node.refreshes >= 2:
                    break
                await asyncio.sleep(0.2)
            assert node.refreshes >= 2
            assert (await node.request("show.create", room=room))["room"] == room  # grants kept
            assert await node.request("ping") == {"pong": True}


async def test_a_refresh_the_api_shed_is_tried_again(up: Up, register: Register) -> None:
    """The API sheds a token request (503) under load: the node client's refresh loop lives on."""
    email, password = await register("shed-refresher")
    async with ApiClient(up.base) as api:
        await api.login(email, password)
        room = (await api.create_room()).room
        fresh = api.token_source(room, "broadcaster")
        asked = [0]

        async def shedding() -> str | NodeToken:
            asked[0] += 1
            if asked[0] == 2:  # the first refresh
                raise ApiError(503, "the server is at capacity; retry after Retry-After seconds")
            return await fresh()

        async with NodeClient(up.base, shedding, refresh_margin_s=100_000) as node:
            for _ in range(150):
                if node.refreshes >= 1:
                    break
                await asyncio.sleep(0.2)
            assert asked[0] >= 3 and node.refreshes >= 1


async def test_closed_clients_refuse_calls(up: Up, register: Register) -> None:
    email, password = await register("closer")
    api = ApiClient(up.base)
    with pytest.raises(ClosedError):
        await api.ws_token()  # not opened
    await api.open()
    with pytest.raises(ApiError) as wrong:
        await api.login(email, "not the password")
    assert wrong.value.status == 401
    await api.login(email, password)
    node = NodeClient(up.base, api.token_source())
    await node.open()
    await node.close()
    await node.close()
    with pytest.raises(ClosedError):
        await node.request("ping")
    await api.close()
    await api.close()
    with pytest.raises(ClosedError):
        await api.ws_token()
    with pytest.raises(ClosedError):
        await api.open()
