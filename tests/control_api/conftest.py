"""The control API on the real embedded Postgres and Redis, reached through aiohttp's test client."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from argon2 import PasswordHasher
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from control_api.app import ApiDeps, create_api_app
from switchboard.health import Readiness
from switchboard.settings import ApiSettings, TurnSettings
from tests.conftest import REDIS_KINDS, redis_url_of
from tests.control_api.conformance import Conformance

ON_CLUSTER_TOO = pytest.mark.parametrize("redis_url", REDIS_KINDS, indirect=True)
"""Runs a test of the control API twice: on one Redis (``[single]``) and on a real 3-master Redis
Cluster (``[cluster]``, tests/redis_cluster.py): the API, its test client and any node share the URL."""


@pytest.fixture
def redis_url(request: pytest.FixtureRequest) -> str:
    """One Redis; a test marked :data:`ON_CLUSTER_TOO` gets the cluster's URL in its ``[cluster]`` run."""
    if getattr(request, "param", None):
        return redis_url_of(request)
    return str(request.getfixturevalue("redis_server").url)


@dataclass
class Outbox:
    """A Mailer (our Protocol) that keeps what it was asked to send."""

    sent: list[tuple[str, str, str]] = field(default_factory=list)

    async def send(self, to: str, subject: str, body: str) -> None:
        self.sent.append((to, subject, body))

    def last_code(self, to: str) -> str:
        for addr, _, body in reversed(self.sent):
            if addr == to:
                match = re.search(r"\b(\d{6})\b", body)
                assert match, body
                return match.group(1)
        raise AssertionError(f"no mail to {to}")


@dataclass
class User:
    id: str
    email: str
    password: str
    access: str
    refresh: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}


@dataclass
class Api:
    client: TestClient
    outbox: Outbox
    key: Ed25519PrivateKey
    app: web.Application
    n: int = 0

    async def user(self, pseudo: str | None = None, birth_date: str = "1990-05-01") -> User:
        """A registered, verified, logged-in user (with a profile when ``pseudo`` is given)."""
        self.n += 1
        email, password = f"user{self.n}@example.com", f"password-{self.n}"
        resp = await self.client.post("/api/auth/register", json={"email": email, "password": password})
        assert resp.status == 202, await resp.text()
        resp = await self.client.post("/api/auth/verify", json={"email": email, "code": self.outbox.last_code(email)})
        assert resp.status == 200, await resp.text()
        resp = await self.client.post("/api/auth/login", json={"email": email, "password": password})
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        user = User(body["user_id"], email, password, body["access_token"], body["refresh_token"])
        if pseudo is not None:
            resp = await self.client.patch("/api/me/profile", json={"pseudo": pseudo, "birth_date": birth_date},
                                           headers=user.auth)
            assert resp.status == 200, await resp.text()
        return user

    async def call(self, method: str, path: str, user: User | None = None, **kw: Any) -> tuple[int, Any]:
        headers = {**(user.auth if user else {}), **kw.pop("headers", {})}
        resp = await self.client.request(method, "/api" + path, headers=headers, **kw)
        text = await resp.text()
        if resp.content_type in ("application/json", "application/problem+json") and text:
            return resp.status, await resp.json(content_type=None)
        return resp.status, text


def api_settings(**overrides: Any) -> ApiSettings:
    """The API's settings for tests. Shedding on a late event loop is off unless a test turns it on:
    this machine's load would shed at random (tests/control_api/test_admission.py turns it on)."""
    return ApiSettings(**{"lag_shed_ms": 600_000.0, **overrides})


CLOSE_S = 60.0
"""An app's teardown (its cleanup contexts) gets this long; beyond it the test fails with every task's stack."""


@pytest.fixture
async def aiohttp_client() -> AsyncIterator[Callable[[web.Application], Awaitable[TestClient]]]:
    """pytest-aiohttp's fixture, with a bounded close: a teardown that hangs fails in CLOSE_S and
    prints what every task was waiting for, instead of idling until the suite's timeout."""
    clients: list[TestClient] = []

    async def make(app: web.Application) -> TestClient:
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in reversed(clients):
        try:
            async with asyncio.timeout(CLOSE_S):
                await client.close()
        except TimeoutError:
            for task in asyncio.all_tasks():
                task.print_stack(file=sys.stderr)
            raise AssertionError(f"the app did not close within {CLOSE_S:.0f} s (task stacks on stderr)") from None


@pytest.fixture
def make_api(
    aiohttp_client: Callable[..., Awaitable[TestClient]], database_url: str, redis: Any, redis_url: str,
    tmp_path: Path, conformance: Conformance
) -> Callable[..., Awaitable[Api]]:
    async def make(settings: ApiSettings | None = None, consume_events: bool = False,
                   turn: TurnSettings | None = None, turn_secret: str = "", dispatch_webhooks: bool = False,
                   **more: Any) -> Api:
        outbox, key = Outbox(), Ed25519PrivateKey.generate()
        deps = ApiDeps(
            settings or api_settings(), database_url, redis_url, Readiness(), token_key=key,
            media_dir=tmp_path / "media", hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
            mailer=outbox, consume_events=consume_events, turn=turn or TurnSettings(), turn_secret=turn_secret,
            dispatch_webhooks=dispatch_webhooks, **more,
        )
        root = web.Application(middlewares=[conformance.middleware])
        root.add_subapp("/api", create_api_app(deps))
        return Api(await aiohttp_client(root), outbox, key, root)

    return make


@pytest.fixture
def conformance() -> Iterator[Conformance]:
    """Checks every success answer of the test's apps against the OpenAPI document; fails the test at
    teardown with each answer that did not conform."""
    checker = Conformance()
    yield checker
    assert not checker.broken, "answers that do not conform to /api/openapi.json:\n" + "\n".join(checker.broken)


@pytest.fixture
async def api(make_api: Callable[..., Awaitable[Api]]) -> Api:
    return await make_api()
