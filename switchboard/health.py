"""``/healthz`` (alive), ``/readyz`` (dependencies answer) and ``/metrics`` (Prometheus) for every process.

Each plane registers the probes of what it depends on (its Redis; Postgres for the API) on the
process's :class:`Readiness`; ``/readyz`` is 200 only when every probe answers in time. ``/metrics``
is on the main application only in ``switchboard up`` (a laptop); production processes serve it
from :func:`metrics_app` on an internal listener.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

Probe = Callable[[], Awaitable[object]]


class Readiness:
    """Named async probes; a probe is ready when it returns without raising within the timeout."""

    def __init__(self, timeout_s: float = 2.0) -> None:
        self._probes: dict[str, Probe] = {}
        self._timeout_s = timeout_s

    def add(self, name: str, probe: Probe) -> None:
        self._probes[name] = probe

    async def check(self) -> dict[str, str]:
        async def one(probe: Probe) -> str:
            try:
                await asyncio.wait_for(probe(), self._timeout_s)
            except Exception as exc:  # a probe's failure is the answer, whatever it is
                return f"down: {type(exc).__name__}"
            return "ok"

        names = list(self._probes)
        results = await asyncio.gather(*(one(self._probes[n]) for n in names))
        return dict(zip(names, results, strict=True))


HEALTH_READINESS = web.AppKey("readiness", Readiness)
HEALTH_REGISTRY = web.AppKey("registry", CollectorRegistry)


def _route_name(request: web.Request) -> str:
    info = request.match_info.route.resource
    return info.canonical if info is not None else "unmatched"


def metrics_middleware(registry: CollectorRegistry) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Counts requests and times them per route template (never per raw path: bounded labels)."""
    requests = Counter("http_requests", "HTTP requests handled", ["method", "route", "status"], registry=registry)
    latency = Histogram("http_request_seconds", "HTTP request latency", ["route"], registry=registry)
    # The labelled children, looked up once per label set (labels() validates and locks on every call);
    # the keys are bounded as the labels are (methods, route templates, statuses).
    counts: dict[tuple[str, str, int], Any] = {}
    timings: dict[str, Any] = {}

    @web.middleware
    async def middleware(request: web.Request, handler):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            route = _route_name(request)
            key = (request.method, route, status)
            count = counts.get(key)
            if count is None:
                count = counts[key] = requests.labels(request.method, route, str(status))
            timing = timings.get(route)
            if timing is None:
                timing = timings[route] = latency.labels(route)
            count.inc()
            timing.observe(time.perf_counter() - started)

    return middleware


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def _readyz(request: web.Request) -> web.Response:
    results = await request.app[HEALTH_READINESS].check()
    ready = all(v == "ok" for v in results.values())
    return web.json_response({"ready": ready, "checks": results}, status=200 if ready else 503)


async def _metrics(request: web.Request) -> web.Response:
    # The process collector reads /proc files: off the event loop.
    body = await asyncio.to_thread(generate_latest, request.app[HEALTH_REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_health_routes(app: web.Application, readiness: Readiness, registry: CollectorRegistry,
                      metrics: bool = True) -> None:
    """``/healthz`` and ``/readyz`` on ``app``, and ``/metrics`` when ``metrics`` is true."""
    app[HEALTH_READINESS] = readiness
    app[HEALTH_REGISTRY] = registry
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    if metrics:
        app.router.add_get("/metrics", _metrics)


def metrics_app(registry: CollectorRegistry) -> web.Application:
    """``/metrics`` alone, for a process's internal listener."""
    app = web.Application()
    app[HEALTH_REGISTRY] = registry
    app.router.add_get("/metrics", _metrics)
    return app
