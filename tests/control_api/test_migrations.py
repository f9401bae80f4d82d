"""Migrations run up, down to 0001 and up again on a real Postgres, and match the models."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from control_api.db import alembic_config, open_engine, upgrade_sync
from control_api.models import Base


def test_down_and_up_again(empty_database_url: str) -> None:
    upgrade_sync(empty_database_url)
    command.downgrade(alembic_config(empty_database_url), "0001")
    upgrade_sync(empty_database_url)


async def test_models_match_the_migrations(database_url: str) -> None:
    engine = open_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata))
    finally:
        await engine.dispose()
    # The search indexes are SQL-only (expression with an operator class); nothing else may differ.
    assert [d for d in diff if "profiles_pseudo_" not in str(d)] == []
