"""One real ``switchboard up`` per test module (the browser tests' helpers), and accounts made through the SDK."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from switchboard_client import ApiClient
from tests.e2e.browser import Up, mailed_code, up_on_fresh_data

_names = itertools.count(1)


@pytest.fixture(scope="module")
def up() -> Iterator[Up]:
    with up_on_fresh_data("switchboard-sdk-") as server:
        yield server


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
