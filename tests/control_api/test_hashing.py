"""Item 7 of issue 12: password hashing is bounded. With every slot busy and the short queue full, a
request that needs argon2 is refused at once with 503 and Retry-After instead of waiting in line."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from argon2 import PasswordHasher

from control_api.services import SERVICES
from tests.control_api.conftest import Api, api_settings


async def _until(predicate: Callable[[], bool]) -> None:
    """Polls a counter that has no event to wait on (the pool's pending count)."""
    async with asyncio.timeout(10):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_a_full_hashing_queue_answers_503_at_once(
    make_api: Callable[..., Awaitable[Api]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = await make_api(api_settings(hash_slots=1, hash_queue=1))
    user = await api.user()
    work = api.app._subapps[0][SERVICES].passwords  # type: ignore[attr-defined]
    assert (work.slots, work.queue) == (1, 1)
    release = threading.Event()
    real_verify = PasswordHasher.verify

    def held(self: PasswordHasher, *args: Any, **kw: Any) -> bool:
        release.wait(10)  # in the hashing thread, never on the loop
        return real_verify(self, *args, **kw)

    monkeypatch.setattr(PasswordHasher, "verify", held)
    login = {"email": user.email, "password": user.password}
    running = asyncio.create_task(api.call("POST", "/auth/login", json=login))
    await _until(lambda: work.pending == 1)
    queued = asyncio.create_task(api.call("POST", "/auth/login", json=login))
    await _until(lambda: work.pending == 2)
    try:
        resp = await api.client.post("/api/auth/login", json=login)
        assert resp.status == 503 and resp.headers["Retry-After"] == "1"
        body = await resp.json(content_type=None)
        assert body["title"] == "Service unavailable" and "password checks" in body["detail"]
        status, _ = await api.call("POST", "/auth/forgot", json={"email": user.email})
        assert status == 503  # every door that hashes shares the bound
    finally:
        release.set()
    assert [(await t)[0] for t in (running, queued)] == [200, 200]
    await _until(lambda: work.pending == 0)
    assert (await api.call("POST", "/auth/login", json=login))[0] == 200
