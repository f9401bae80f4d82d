"""A real receiving endpoint on 127.0.0.1 for the webhook tests: records every request, answers by plan."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from control_api.webhooks.dispatcher import Dispatcher
from switchboard.settings import WebhookSettings

FAST = WebhookSettings(retry_for_s=600, backoff_base_s=0.05, backoff_max_s=0.2, timeout_s=0.5, poll_s=0.05,
                       concurrency=4)
"""Fast retries for tests (production: 5 s doubling to an hour, for three days)."""


@dataclass
class Received:
    headers: dict[str, str]
    raw: bytes
    status: int | None
    """What the receiver answered (None: it did not answer in time)."""

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.raw)  # type: ignore[no-any-return]


@dataclass
class Receiver:
    server: TestServer
    plan: list[str] = field(default_factory=list)
    """One answer per request in order (``500``, ``hang``), then 204s."""
    got: list[Received] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return str(self.server.make_url("/hook"))

    def delivered(self, match: Callable[[dict[str, Any]], bool] = lambda e: True) -> list[dict[str, Any]]:
        """Events answered with a 2xx, in arrival order."""
        return [r.event for r in self.got if r.status is not None and r.status < 300 and match(r.event)]

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        mode = self.plan.pop(0) if self.plan else "ok"
        received = Received(dict(request.headers), raw, None)
        self.got.append(received)
        if mode == "hang":  # longer than the dispatcher's timeout
            try:
                await asyncio.wait_for(self.release.wait(), 5)
            except TimeoutError:
                pass
            return web.Response(status=204)
        received.status = 500 if mode == "500" else 204
        return web.Response(status=received.status)


async def start_receiver() -> Receiver:
    app = web.Application()
    receiver = Receiver(TestServer(app, host="127.0.0.1"))
    app.router.add_post("/hook", receiver.handle)
    await receiver.server.start_server()
    return receiver


async def until(check: Callable[[], Any], what: str, limit_s: float = 30.0) -> Any:
    """Polls ``check`` until it is truthy (a deadline for a hung test, not a timing assertion)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit_s
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > end:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.05)


__all__ = ["FAST", "Dispatcher", "Receiver", "start_receiver", "until"]
