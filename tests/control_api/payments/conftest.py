"""Payments against a real localstripe (its own process on a free port) and the real API."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from control_api.db import open_engine
from control_api.payments.service import PAYMENTS, Payments
from control_api.payments.signature import sign
from switchboard.settings import PaymentsSettings
from tests.control_api.conftest import Api, User

WEBHOOK_SECRET = "whsec_test_switchboard"
CARDS = {"ok": "4242424242424242", "3ds": "4000000000003220", "declined": "4000000000000341",
         "declined_on_attach": "4000000000000002"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def localstripe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """localstripe (GPL: run as a process, never imported) on a free port; its base URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("localstripe") / "localstripe.log"
    exe = Path(sys.executable).with_name("localstripe")
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(exe), "--port", str(port), "--from-scratch"], stdout=out, stderr=out,
                                cwd=log.parent, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            req = urllib.request.Request(base + "/v1/customers?limit=1",
                                         headers={"Authorization": "Bearer sk_test_x"})
            with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=1):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"localstripe did not start: {log.read_text()[-2000:]}") from None
            time.sleep(0.2)
    yield base
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def payments_settings(localstripe: str, **overrides: Any) -> PaymentsSettings:
    values: dict[str, Any] = {"stripe_api_key": "sk_test_switchboard", "stripe_api_base": localstripe,
                              "stripe_webhook_secret": WEBHOOK_SECRET, "stripe_timeout_s": 5, "hold_sweep_s": 0.5}
    return PaymentsSettings(**{**values, **overrides})


class Stripe:
    """The test's hands on localstripe and the API: cards as Stripe.js would make them, 3-D Secure
    answers, signed deliveries of our own events."""

    def __init__(self, base: str, api: Api) -> None:
        self.base, self.api = base, api
        self.http = aiohttp.ClientSession(headers={"Authorization": "Bearer sk_test_switchboard"})

    @property
    def payments(self) -> Payments:
        return self.api.app._subapps[0][PAYMENTS]  # type: ignore[attr-defined]

    async def stripe(self, method: str, path: str, **data: Any) -> Any:
        async with self.http.request(method, self.base + path, data=_form(data)) as resp:
            body = await resp.json() if resp.content_length else None
            assert resp.status < 300, body
            return body

    async def card(self, kind: str = "ok") -> str:
        pm = await self.stripe("POST", "/v1/payment_methods", type="card", card={
            "number": CARDS[kind], "exp_month": "12", "exp_year": "2030", "cvc": "123"})
        return str(pm["id"])

    async def authenticate(self, intent_id: str, client_secret: str, success: bool = True) -> Any:
        """What the Stripe.js stand-in does when the user passes (or fails) 3-D Secure."""
        return await self.stripe("POST", f"/v1/payment_intents/{intent_id}/_authenticate",
                                 client_secret=client_secret, success="true" if success else "false")

    async def listen(self) -> None:
        """Points localstripe's webhooks at this test's API."""
        port = self.api.client.server.port
        await self.stripe("POST", "/_config/webhooks/switchboard", secret=WEBHOOK_SECRET,
                          url=f"http://127.0.0.1:{port}/api/payments/webhook")

    async def deliver(self, event: dict[str, Any], *, secret: str = WEBHOOK_SECRET, at: int | None = None,
                      header: str | None = None) -> tuple[int, Any]:
        body = json.dumps(event).encode()
        sig = header if header is not None else sign(body, secret, at)
        return await self.api.call("POST", "/payments/webhook", data=body,
                                   headers={"Stripe-Signature": sig, "Content-Type": "application/json"})

    async def wallet(self, user: User) -> dict[str, Any]:
        status, body = await self.api.call("GET", "/wallet", user)
        assert status == 200, body
        return dict(body)

    async def until(self, probe: Callable[[], Awaitable[bool]], within_s: float = 15) -> None:
        deadline = time.monotonic() + within_s
        while not await probe():
            assert time.monotonic() < deadline, "timed out waiting"
            await asyncio.sleep(0.1)

    async def close(self) -> None:
        await self.http.close()


def _form(data: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}[{key}]" if prefix else key
        if isinstance(value, dict):
            out.update(_form(value, name))
        else:
            out[name] = str(value)
    return out


@pytest.fixture
async def stripe_api(make_api: Callable[..., Awaitable[Api]], localstripe: str) -> Any:
    api = await make_api(payments=payments_settings(localstripe))
    hands = Stripe(localstripe, api)
    try:
        await hands.listen()
        yield hands
    finally:
        await hands.close()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the test database, for the ledger used without the API."""
    engine = open_engine(database_url, pool_size=10)
    yield engine
    await engine.dispose()


async def users(engine: AsyncEngine, n: int) -> list[uuid.UUID]:
    """``n`` bare accounts (rows only: no login), for the ledger used without the API."""
    ids = [uuid.uuid4() for _ in range(n)]
    async with engine.begin() as conn:
        for i, uid in enumerate(ids):
            await conn.execute(text("INSERT INTO accounts (id, email, password_hash) VALUES (:i, :e, 'x')"),
                               {"i": uid, "e": f"l{uid.hex[:8]}{i}@example.com"})
    return ids
