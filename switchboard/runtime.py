"""Running one aiohttp application until SIGINT/SIGTERM, then closing it within a deadline.

Every process (``up``, ``node``, ``api``, ``matchmaker``) ends here: the app's ``cleanup_ctx``
closes what it opened (Redis, the engine, background tasks), and a stop that overruns the deadline
is logged and cut short so the process always exits.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable

from aiohttp import web

from switchboard.health import metrics_middleware
from switchboard.logs import Handler, request_id_middleware

Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]

log = logging.getLogger("switchboard.runtime")


LISTEN_BACKLOG = 1024
"""Connections the kernel queues for accept (aiohttp's default is 128)."""

LONG_LIVED = frozenset({"/ws"})
"""Paths whose requests live as long as a socket: the middlewares let them straight through."""


def base_app(registry, client_max_size: int = 8 * 1024 * 1024) -> web.Application:  # type: ignore[no-untyped-def]
    """An application with the request-id and metrics middlewares every process uses (not on
    :data:`LONG_LIVED` paths)."""
    return web.Application(
        middlewares=[_short_lived(request_id_middleware), _short_lived(metrics_middleware(registry))],
        client_max_size=client_max_size,
    )


def _short_lived(middleware: Middleware) -> Middleware:
    """``middleware`` for ordinary requests only. The wrapper is a plain function that returns the
    awaitable it is given: a socket's request keeps no middleware frame on its stack for its whole
    life (~300 bytes per frame, times 10,000 sockets)."""

    @web.middleware
    def wrapper(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
        if request.path in LONG_LIVED:
            return handler(request)
        return middleware(request, handler)

    return wrapper  # type: ignore[return-value]


async def serve(
    app: web.Application,
    host: str,
    port: int,
    *,
    on_started: Callable[[int], Awaitable[None] | None] | None = None,
    stop_deadline_s: float = 3.0,
) -> None:
    """Serves ``app`` until a stop signal; ``on_started`` gets the bound port (useful with port 0)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # timeout_ceil_threshold: aiohttp rounds longer timers up to whole seconds, which fired every
    # socket's WebSocket heartbeat due in one second at once (10k sockets: ~500 pings in one loop
    # pass, a 50-130 ms stall every second). Unrounded, the pings spread out as the sockets did.
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0,
                           timeout_ceil_threshold=3600)
    await runner.setup()
    try:
        # backlog: a connect storm past a short accept queue loses SYNs, and TCP retries them after
        # 1, 3, 7... s; accepted at once, a connect the process cannot serve is refused at once instead.
        site = web.TCPSite(runner, host, port, reuse_address=True, backlog=LISTEN_BACKLOG)
        await site.start()
        bound = runner.addresses[0][1] if runner.addresses else port
        if on_started is not None:
            result = on_started(bound)
            if asyncio.iscoroutine(result):
                await result
        await stop.wait()
        log.info("stopping")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        try:
            await asyncio.wait_for(runner.cleanup(), stop_deadline_s)
        except TimeoutError:
            log.error("clean stop overran %.1fs; exiting anyway", stop_deadline_s)
