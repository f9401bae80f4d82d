"""The control API and a real node on the same Redis, the node trusting the API's tokens (its SFU and
queue are fakes at their Protocol boundaries): what the API reads of a node's Redis state and events
is the node's own writing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from signaling.node import NodeDeps, install_node
from switchboard.health import Readiness
from switchboard.tokens import TokenVerifier
from tests.control_api.conftest import Api, User
from tests.signaling.conftest import SETTINGS, Node, Peer
from tests.signaling.fakes import FakeMedia, FakeTickets, media_opener


@pytest.fixture
async def api_node(make_api: Callable[..., Awaitable[Api]], redis_url: str, redis: Any,
                   tmp_path: Path) -> AsyncIterator[tuple[Api, Node]]:
    api = await make_api()
    media, tickets = FakeMedia(), FakeTickets(redis)
    app = web.Application()
    install_node(app, NodeDeps(SETTINGS, redis_url, Readiness(), tmp_path,
                               verifier=TokenVerifier(api.key.public_key(), issuer="switchboard"),
                               open_media=media_opener(media), open_tickets=lambda r: tickets))
    client = TestClient(TestServer(app))
    await client.start_server()
    yield api, Node(client, media, tickets, app)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.close(), 10)


async def socket(api: Api, node: Node, user: User) -> Peer:
    """``user``'s /ws socket on ``node``, with a token from the API."""
    status, body = await api.call("POST", "/ws-token", user)
    assert status == 200, body
    return await node.connect(body["token"])


async def in_room(api: Api, node: Node, user: User, room: str, role: str) -> Peer:
    """``user``'s socket with the API's room token for ``role`` (broadcaster, viewer, hidden)."""
    status, body = await api.call("POST", f"/rooms/{room}/token", user, json={"role": role})
    assert status == 200, body
    return await node.connect(body["token"])


async def live_show(api: Api, node: Node, owner: User, *viewers: User) -> tuple[str, Peer, list[Peer]]:
    """A room ``owner`` made through the API, live on ``node``, each viewer joined: (room, host, viewers)."""
    status, made = await api.call("POST", "/rooms", owner, json={})
    assert status == 201, made
    room = made["room"]
    host = await in_room(api, node, owner, room, "broadcaster")
    await host.ok("show.create")
    peers = []
    for viewer in viewers:
        peer = await in_room(api, node, viewer, room, "viewer")
        await peer.ok("show.join", room=room)
        peers.append(peer)
    return room, host, peers
