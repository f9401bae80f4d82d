"""The embedded servers are real: data survives a restart, and they stop when asked."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import psutil

from switchboard.embedded import EmbeddedPostgres, EmbeddedRedis
from switchboard.redis_client import open_redis


async def test_session_redis_fixture_is_a_real_server(redis) -> None:  # type: ignore[no-untyped-def]
    await redis.set("k", "v")
    assert await redis.get("k") == b"v"
    info = await redis.info("server")
    assert info["redis_version"].startswith("6.")


async def test_session_postgres_fixture_is_a_real_server(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        assert (await conn.fetchval("SHOW server_version")).startswith("16")
        assert await conn.fetchval("SELECT count(*) FROM alembic_version") == 1
    finally:
        await conn.close()


def test_redis_keeps_its_data_across_restarts(tmp_path: Path) -> None:
    import redis

    server = EmbeddedRedis(tmp_path / "r")
    client = redis.Redis.from_url(server.start())
    client.set("survives", "yes")
    client.close()
    pid = server.pid
    server.stop()
    assert pid is not None and not psutil.pid_exists(pid)
    server.stop()  # safe twice
    again = EmbeddedRedis(tmp_path / "r")
    client = redis.Redis.from_url(again.start())
    try:
        assert client.get("survives") == b"yes"
    finally:
        client.close()
        again.stop()


def test_postgres_keeps_its_data_across_restarts(server_tmp: Path) -> None:
    import asyncio

    async def run(url: str, sql: str) -> object:
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()

    server = EmbeddedPostgres(server_tmp / "p")
    asyncio.run(run(server.start(), "CREATE TABLE kept AS SELECT 42 AS v"))
    pids = [p.pid for p in psutil.Process(server.pid).children(recursive=True)] + [server.pid]
    server.stop()
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids)
    again = EmbeddedPostgres(server_tmp / "p")
    try:
        assert asyncio.run(run(again.start(), "SELECT v FROM kept")) == 42
    finally:
        again.stop()


async def test_redis_password_is_required(redis_server: EmbeddedRedis) -> None:
    import redis.exceptions

    anonymous = open_redis(f"redis://127.0.0.1:{redis_server.port}/0")
    try:
        try:
            await anonymous.ping()
        except redis.exceptions.AuthenticationError:
            pass
        else:
            raise AssertionError("embedded Redis answered without its password")
    finally:
        await anonymous.aclose()
