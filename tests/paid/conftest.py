"""Paid live features end to end: the real control API (Postgres, Redis, the billing consumer) and a
real node on the same Redis, tokens signed by the API's own key (the node verifies with it)."""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from control_api.ledger.book import Ledger
from control_api.payments.service import PAYMENTS, Payments
from control_api.services import SERVICES
from signaling.node import NodeDeps, install_node
from switchboard.health import Readiness
from switchboard.settings import NodeSettings, PaymentsSettings
from switchboard.tokens import TokenVerifier
from tests.control_api.conftest import Api, User, conformance, make_api, redis_url  # noqa: F401 (the fixtures)
from tests.signaling.conftest import SETTINGS, Node
from tests.signaling.fakes import FakeMedia, FakeTickets, media_opener


@dataclasses.dataclass
class Live:
    """The API and a node sharing Redis and the token key."""

    api: Api
    node: Node

    @property
    def payments(self) -> Payments:
        return self.api.app._subapps[0][PAYMENTS]  # type: ignore[attr-defined, no-any-return]

    @property
    def redis(self) -> Any:
        return self.api.app._subapps[0][SERVICES].redis  # type: ignore[attr-defined]

    @property
    def ledger(self) -> Ledger:
        return self.payments.ledger

    async def fund(self, user: User, credits: int) -> None:
        await self.ledger.deposit(f"test-seed:{user.id}", uuid.UUID(user.id), credits)

    async def room_token(self, user: User, room: str, role: str = "viewer") -> tuple[int, Any]:
        return await self.api.call("POST", f"/rooms/{room}/token", user, json={"role": role})

    async def ws_token(self, user: User) -> str:
        status, body = await self.api.call("POST", "/ws-token", user)
        assert status == 200, body
        return str(body["token"])


LiveFactory = Callable[..., Awaitable[Live]]


@pytest.fixture
async def make_live(make_api: Callable[..., Awaitable[Api]], redis_url: str, redis: Any,  # noqa: F811
                    tmp_path: Any) -> AsyncIterator[LiveFactory]:
    clients: list[TestClient] = []

    async def make(settings: NodeSettings = SETTINGS, open_media: Any = None, **payments: Any) -> Live:
        api = await make_api(consume_events=True, payments=PaymentsSettings(hold_sweep_s=0.5, **payments))
        app = web.Application()
        install_node(app, NodeDeps(settings, redis_url, Readiness(), tmp_path,
                                   verifier=TokenVerifier(api.key.public_key(), issuer="switchboard"),
                                   open_media=open_media or media_opener(FakeMedia()),
                                   open_tickets=lambda r: FakeTickets(redis)))
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return Live(api, Node(client, FakeMedia(), FakeTickets(redis), app))

    yield make
    for client in clients:
        with contextlib.suppress(Exception):
            await client.close()
