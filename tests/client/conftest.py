"""One real ``switchboard up`` per test module (the browser tests' helpers), and accounts made through the SDK."""

from __future__ import annotations

import asyncio
import itertools
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from switchboard_client import ApiClient
from tests.e2e.browser import Up, mailed_code, start_up, stop_up

_names = itertools.count(1)


@pytest.fixture(scope="module")
def up() -> Iterator[Up]:
    # Outside pytest's basetemp: the embedded Postgres runs as another user and must traverse it.
    base = Path(tempfile.mkdtemp(prefix="switchboard-sdk-"))
    server = start_up(base / "var")
    yield server
    stop_up(server)
    shutil.rmtree(base, ignore_errors=True)


SignUp = Callable[[str], Awaitable[ApiClient]]
Register = Callable[[str], Awaitable[tuple[str, str]]]


@pytest.fixture
def register(up: Up) -> Register:
    """``email, password = await register("bob")``: a new verified account, made with the SDK."""

    async def make(name: str) -> tuple[str, str]:
        email, password = f"{name}-{next(_names)}-{id(up)}@example.com", "correct horse battery"
        async with ApiClient(up.base) as api:
            await api.register(email, password)
            await api.verify(email, await asyncio.to_thread(mailed_code, up, email))
        return email, password

    return make


@pytest.fixture
async def sign_up(up: Up, register: Register) -> AsyncIterator[SignUp]:
    """``await sign_up("alice")``: a new verified account, registered, verified and logged in with the SDK."""
    clients: list[ApiClient] = []

    async def make(name: str) -> ApiClient:
        email, password = await register(name)
        api = ApiClient(up.base)
        clients.append(api)
        await api.open()
        await api.login(email, password)
        return api

    yield make
    for api in clients:
        await api.close()


@pytest.fixture
async def moderator(up: Up) -> AsyncIterator[ApiClient]:
    """The first-run admin of ``up``, logged in with the SDK (admins may take hidden room tokens)."""
    assert up.admin is not None
    async with ApiClient(up.base) as api:
        await api.login(*up.admin)
        yield api
