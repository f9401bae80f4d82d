"""The API's Postgres: engine from a URL, and Alembic migrations run from code."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

MIGRATIONS = Path(__file__).with_name("migrations")


def async_url(url: str) -> str:
    """``postgresql://...`` as SQLAlchemy's asyncpg URL."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix):]
    raise ValueError("database_url must start with postgresql://")


PING_IDLE_S = 10.0
"""A pooled connection idle longer than this is pinged before it is handed out."""


def open_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    """The engine. Connections are pinged only after ``PING_IDLE_S`` idle: SQLAlchemy's
    ``pool_pre_ping`` pings on every checkout, and its asyncpg ping is three round trips (BEGIN,
    ``;``, ROLLBACK), more than most requests' own queries. A connection dead in between (Postgres
    restarted within 10 s) fails its request once and the pool drops it."""
    engine = create_async_engine(async_url(url), pool_size=pool_size, max_overflow=pool_size)
    pool = engine.sync_engine.pool

    @event.listens_for(pool, "checkin")
    def returned(dbapi_connection: Any, record: Any) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        at = record.info.get("returned_at")
        if at is not None and time.monotonic() - at > PING_IDLE_S:
            try:
                dbapi_connection.ping()
            except Exception as exc:  # the pool invalidates it and tries another connection
                raise DisconnectionError(str(exc)) from exc

    return engine


def sessions(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", async_url(url).replace("%", "%%"))
    return cfg


def upgrade_sync(url: str, revision: str = "head") -> None:
    """Runs migrations to ``revision``; needs no running event loop in this thread."""
    command.upgrade(alembic_config(url), revision)


async def upgrade(url: str, revision: str = "head") -> None:
    """Runs migrations from async code (Alembic's async env runs its own loop in a worker thread)."""
    await asyncio.to_thread(upgrade_sync, url, revision)
