"""The server every process runs (:func:`switchboard.runtime.app_runner`) logs what happened at the
level it deserves: a request its parser refused (the client got a 400) is INFO, a handler's crash
is still ERROR with its traceback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from switchboard.runtime import app_runner, base_app


async def _boom(request: web.Request) -> web.Response:
    raise RuntimeError("a real bug")


@pytest.fixture
async def port() -> AsyncIterator[int]:
    app = base_app(CollectorRegistry())
    app.router.add_get("/boom", _boom)
    runner = app_runner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield runner.addresses[0][1]
    await runner.cleanup()


async def _exchange(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(65536), 30)
    finally:
        writer.close()


@pytest.mark.parametrize("request_bytes", [
    b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
    b"GET /" + b"p" * 20_000 + b" HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: nope\r\n\r\n",
], ids=["header too long", "request line too long", "bad content-length"])
async def test_a_refused_request_is_info_not_error(port: int, request_bytes: bytes,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    answer = await _exchange(port, request_bytes)
    assert answer.split(b" ", 2)[1] == b"400", answer[:100]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    refused = [r for r in caplog.records if "refused a malformed request" in r.getMessage()]
    assert refused and refused[0].levelno == logging.INFO and refused[0].exc_info is None


async def test_a_handler_crash_is_still_an_error(port: int, caplog: pytest.LogCaptureFixture) -> None:
    answer = await _exchange(port, b"GET /boom HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert answer.split(b" ", 2)[1] == b"500", answer[:100]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and errors[0].exc_info is not None and "a real bug" in caplog.text
