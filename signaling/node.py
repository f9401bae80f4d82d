"""A node: the signaling WebSocket endpoint and the web pages, on one aiohttp application.

``install_node`` adds the node's routes and resources to an application the caller owns (the
node's own process, or the single listener of ``switchboard up``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as aioredis
from aiohttp import web

from switchboard.health import Readiness
from switchboard.keyspace import open_redis
from switchboard.settings import NodeSettings

NODE_REDIS = web.AppKey("node_redis", aioredis.Redis)


@dataclass(frozen=True)
class NodeDeps:
    """What a node needs from the composition root."""

    settings: NodeSettings
    redis_url: str
    readiness: Readiness
    web_dir: Path


def install_node(app: web.Application, deps: NodeDeps) -> None:
    async def resources(app: web.Application) -> AsyncIterator[None]:
        redis = open_redis(deps.redis_url)
        app[NODE_REDIS] = redis
        deps.readiness.add("node_redis", redis.ping)
        yield
        await redis.aclose()

    app.cleanup_ctx.append(resources)
    index = deps.web_dir / "index.html"

    async def home(request: web.Request) -> web.FileResponse:
        return web.FileResponse(index)

    app.router.add_get("/", home)
    app.router.add_static("/static/", deps.web_dir, follow_symlinks=False, append_version=False)
