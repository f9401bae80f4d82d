"""The matchmaker's process shell: its Redis, health and metrics; the pairing loop runs inside it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client import CollectorRegistry

from matchmaker.metrics import MatchmakerMetrics
from matchmaker.pairer import Pairer
from switchboard.health import Readiness
from switchboard.redis_client import open_redis
from switchboard.settings import MatchmakerSettings
from switchboard.tasks import stop_task

MATCHMAKER_REDIS = web.AppKey("matchmaker_redis", aioredis.Redis)
MATCHMAKER_PAIRER = web.AppKey("matchmaker_pairer", Pairer)


@dataclass(frozen=True)
class MatchmakerDeps:
    """What a matchmaker needs from the composition root."""

    settings: MatchmakerSettings
    redis_url: str
    readiness: Readiness
    registry: CollectorRegistry | None = None
    """The process's metrics registry (``/metrics``); None: metrics are kept but not served."""


def install_matchmaker(app: web.Application, deps: MatchmakerDeps) -> None:
    async def resources(app: web.Application) -> AsyncIterator[None]:
        redis = open_redis(deps.redis_url)
        app[MATCHMAKER_REDIS] = redis
        deps.readiness.add("matchmaker_redis", redis.ping)
        pairer = Pairer(redis, deps.settings, MatchmakerMetrics(deps.registry))
        app[MATCHMAKER_PAIRER] = pairer
        task = asyncio.create_task(pairer.run(), name="matchmaker-pairing")
        yield
        await stop_task(task)
        await redis.aclose()

    app.cleanup_ctx.append(resources)
