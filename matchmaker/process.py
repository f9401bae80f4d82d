"""The matchmaker's process shell: its Redis, health and metrics; the pairing loop runs inside it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import redis.asyncio as aioredis
from aiohttp import web

from switchboard.health import Readiness
from switchboard.keyspace import open_redis
from switchboard.settings import MatchmakerSettings

MATCHMAKER_REDIS = web.AppKey("matchmaker_redis", aioredis.Redis)


@dataclass(frozen=True)
class MatchmakerDeps:
    """What a matchmaker needs from the composition root."""

    settings: MatchmakerSettings
    redis_url: str
    readiness: Readiness


def install_matchmaker(app: web.Application, deps: MatchmakerDeps) -> None:
    async def resources(app: web.Application) -> AsyncIterator[None]:
        redis = open_redis(deps.redis_url)
        app[MATCHMAKER_REDIS] = redis
        deps.readiness.add("matchmaker_redis", redis.ping)
        yield
        await redis.aclose()

    app.cleanup_ctx.append(resources)
