"""One process's shell, in-process: every plane composed as `switchboard up` does, on real Redis/Postgres."""

from __future__ import annotations

import gc
import io
import json
import logging
from pathlib import Path

import pytest
from aiohttp import web
from argon2 import PasswordHasher

from control_api.accounts import ensure_admin
from control_api.db import open_engine, sessions
from switchboard.cli.assembly import Process, prepare_database
from switchboard.cli.commands import build_up_app, frozen_once_started
from switchboard.keys import KeyPaths, ensure_secrets
from switchboard.logs import configure_logging
from switchboard.settings import LogSettings, Settings, load_settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Default settings on a data dir of its own, with the secrets `up` would make."""
    settings = load_settings(environ={"SWITCHBOARD_DATA_DIR": str(tmp_path)})
    ensure_secrets(KeyPaths.from_settings(settings))
    return settings


@pytest.fixture
def up_app(settings: Settings, redis_url: str, database_url: str) -> web.Application:
    """Built before the test's loop runs, as `up` builds it before serving (it reads key files)."""
    return build_up_app(settings, redis_url, database_url, Process.new())


@pytest.fixture
def up_app_without_redis(settings: Settings, database_url: str) -> web.Application:
    from switchboard.embedded import free_port

    return build_up_app(settings, f"redis://127.0.0.1:{free_port()}/0", database_url, Process.new())


async def test_up_app_is_ready_and_counts_requests(aiohttp_client, up_app: web.Application) -> None:  # type: ignore[no-untyped-def]
    client = await aiohttp_client(up_app)
    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 200, body
    assert set(body["checks"]) == {"node_redis", "matchmaker_redis", "api_redis", "postgres"}
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/api/")).status == 200
    metrics = await (await client.get("/metrics")).text()
    assert 'http_requests_total{method="GET",route="/readyz",status="200"} 1.0' in metrics
    assert "process_cpu_seconds_total" in metrics


async def test_readyz_is_503_when_a_dependency_is_down(aiohttp_client, up_app_without_redis: web.Application) -> None:  # type: ignore[no-untyped-def]
    client = await aiohttp_client(up_app_without_redis)
    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 503
    assert body["checks"]["postgres"] == "ok"
    assert body["checks"]["node_redis"].startswith("down")


async def test_request_id_is_echoed_and_logged(aiohttp_client, up_app: web.Application) -> None:  # type: ignore[no-untyped-def]
    stream = io.StringIO()
    configure_logging(LogSettings(level="DEBUG", format="json"), stream=stream)
    try:
        client = await aiohttp_client(up_app)
        resp = await client.get("/healthz", headers={"X-Request-Id": "abc-123"})
        assert resp.headers["X-Request-Id"] == "abc-123"
        minted = (await client.get("/healthz", headers={"X-Request-Id": "bad id with spaces"})).headers["X-Request-Id"]
        assert minted != "bad id with spaces" and len(minted) == 32
    finally:
        logging.getLogger().handlers.clear()
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert any(r["request_id"] == "abc-123" and r["logger"] == "switchboard.http" for r in records)


async def test_first_start_makes_one_admin(database_url: str) -> None:
    settings = load_settings(environ={})
    first = await prepare_database(settings, database_url)
    assert first is not None and first.email == settings.api.admin_email
    assert await prepare_database(settings, database_url) is None  # reused, never a second admin
    engine = open_engine(database_url, pool_size=1)
    try:
        again = await ensure_admin(sessions(engine), "other@example.com", PasswordHasher())
        assert again is None
    finally:
        await engine.dispose()


async def test_sockets_skip_the_middlewares(aiohttp_client, up_app: web.Application) -> None:  # type: ignore[no-untyped-def]
    """/ws requests pass the request-id and metrics middlewares untouched (no frame held per socket);
    every other request still gets both."""
    client = await aiohttp_client(up_app)
    ws = await client.ws_connect("/ws")  # no token: the node refuses it (4001), after the upgrade
    await ws.receive()
    await ws.close()
    plain = await client.get("/healthz")
    assert "X-Request-Id" in plain.headers
    metrics = await (await client.get("/metrics")).text()
    assert 'route="/healthz"' in metrics
    assert 'route="/ws"' not in metrics


def test_the_api_keeps_what_exists_once_started_out_of_full_collections() -> None:
    heard: list[int] = []
    before = gc.get_freeze_count()
    try:
        frozen_once_started(heard.append)(8080)
        assert heard == [8080] and gc.get_freeze_count() > before
    finally:
        gc.unfreeze()
