"""The control API as an aiohttp application, mounted at ``/api`` (alone or inside ``switchboard up``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from control_api.db import open_engine
from switchboard.health import Readiness
from switchboard.keyspace import open_redis
from switchboard.settings import ApiSettings

ENGINE = web.AppKey("engine", AsyncEngine)


@dataclass(frozen=True)
class ApiDeps:
    """What the API needs from the composition root."""

    settings: ApiSettings
    database_url: str
    redis_url: str
    readiness: Readiness


def create_api_app(deps: ApiDeps) -> web.Application:
    """The ``/api`` sub-application; opens its engine and Redis on start and closes them on stop."""
    app = web.Application()

    async def resources(app: web.Application) -> AsyncIterator[None]:
        engine = open_engine(deps.database_url)
        redis = open_redis(deps.redis_url)
        app[ENGINE] = engine

        async def postgres_probe() -> None:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        deps.readiness.add("postgres", postgres_probe)
        deps.readiness.add("api_redis", redis.ping)
        yield
        await redis.aclose()
        await engine.dispose()

    app.cleanup_ctx.append(resources)
    app.router.add_get("/", _index)
    return app


async def _index(request: web.Request) -> web.Response:
    return web.json_response({"service": "switchboard control API"})
