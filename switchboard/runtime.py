"""Running one aiohttp application until SIGINT/SIGTERM, then closing it within a deadline.

Every process (``up``, ``node``, ``api``, ``matchmaker``) ends here: the app's ``cleanup_ctx``
closes what it opened (Redis, the engine, background tasks), and a stop that overruns the deadline
is logged and cut short so the process always exits.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import http_exceptions, web
from aiohttp.log import server_logger
from aiohttp.typedefs import Middleware

from switchboard.errors import PortInUse
from switchboard.headers import install_security_headers
from switchboard.health import metrics_middleware
from switchboard.listener import GatedSite, GateLimits, Handshakes
from switchboard.logs import Handler, request_id_middleware

log = logging.getLogger("switchboard.runtime")


LISTEN_BACKLOG = 1024
"""Connections the kernel queues for accept (aiohttp's default is 128)."""

LONG_LIVED = frozenset({"/ws"})
"""Paths whose requests live as long as a socket: the middlewares let them straight through."""


def base_app(registry, client_max_size: int = 8 * 1024 * 1024,  # type: ignore[no-untyped-def]
             socket_urls: tuple[str, ...] = ()) -> web.Application:
    """An application with the request-id and metrics middlewares every process uses (not on
    :data:`LONG_LIVED` paths), and the security headers on every response (its pages may open
    sockets to the nodes at ``socket_urls`` too)."""
    app = web.Application(
        middlewares=[_short_lived(request_id_middleware), _short_lived(metrics_middleware(registry))],
        client_max_size=client_max_size,
    )
    install_security_headers(app, socket_urls)
    return app


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


def check_port_free(host: str, port: int) -> None:
    """Raises :class:`PortInUse` when ``host:port`` cannot be bound now (checked before slow start-up
    work; :func:`serve` raises the same if another process takes it in between)."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(host, port) from None
            raise


class ServerLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server logger with levels that match what happened: a request its parser refused
    (a header too long, a malformed request line; the client got a 400) is the client's doing and
    goes to INFO without a traceback. Every other error stays at ERROR with its traceback."""

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        exc = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1]
        if isinstance(exc, http_exceptions.HttpProcessingError):
            # The first line only, cut short: the rest can be the client's own bytes, kilobytes of them.
            detail = (str(exc.message) or type(exc).__name__).splitlines()[0][:200]
            self.logger.info("refused a malformed request (400): %s", detail)
            return
        self.logger.error(msg, *args, exc_info=exc_info, **kwargs)


def app_runner(app: web.Application) -> web.AppRunner:
    """The runner every process serves with (and tests that need the real server's behaviour)."""
    # timeout_ceil_threshold: aiohttp rounds longer timers up to whole seconds, which fired every
    # socket's WebSocket heartbeat due in one second at once (10k sockets: ~500 pings in one loop
    # pass, a 50-130 ms stall every second). Unrounded, the pings spread out as the sockets did.
    return web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0,
                         timeout_ceil_threshold=3600, logger=ServerLog(server_logger, {}))


@dataclass(frozen=True)
class Gate:
    """The public listener gates connects at accept (switchboard/listener.py)."""

    handshakes: Handshakes
    """Connects under way (the node's gateway counts its part)."""
    limits: GateLimits
    """Queue, wait and pace of the gate."""


@dataclass(frozen=True)
class Internal:
    """A second listener for what must not face the public (``/metrics`` in production)."""

    app: web.Application
    """What it serves."""
    host: str
    """Address to bind (keep it on a private network)."""
    port: int
    """TCP port; 0 picks a free one."""
    setting: str = ""
    """The setting that moves ``port`` (named when the port is taken)."""


async def serve(
    app: web.Application,
    host: str,
    port: int,
    *,
    on_started: Callable[[int], Awaitable[None] | None] | None = None,
    stop_deadline_s: float = 3.0,
    internal: Internal | None = None,
    gate: Gate | None = None,
    before_stop: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Serves ``app`` (and ``internal`` on its own listener) until a stop signal; ``on_started``
    gets the bound port (useful with port 0); with ``gate``, the public listener is a gated one.
    ``before_stop`` runs after the stop signal while every connection is still served (a node's drain:
    aiohttp's own shutdown stops reading open sockets first, so a client's close frame would go
    unseen until the client gave up on it)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner = app_runner(app)
    inner = app_runner(internal.app) if internal is not None else None
    await runner.setup()
    try:
        if internal is not None and inner is not None:
            await inner.setup()
            try:
                await web.TCPSite(inner, internal.host, internal.port, reuse_address=True).start()
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise PortInUse(internal.host, internal.port, internal.setting) from None
                raise
            log.info("internal listener (metrics) on %s:%s", internal.host, inner.addresses[0][1])
        # backlog: a connect storm past a short accept queue loses SYNs, and TCP retries them after
        # 1, 3, 7... s; accepted at once, a connect the process cannot serve is refused at once instead.
        site: web.BaseSite = (
            GatedSite(runner, host, port, backlog=LISTEN_BACKLOG, handshakes=gate.handshakes, limits=gate.limits)
            if gate is not None else web.TCPSite(runner, host, port, reuse_address=True, backlog=LISTEN_BACKLOG))
        try:
            await site.start()
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(host, port) from None
            raise
        bound = runner.addresses[0][1] if runner.addresses else port
        if on_started is not None:
            result = on_started(bound)
            if asyncio.iscoroutine(result):
                await result
        await stop.wait()
        log.info("stopping")
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second signal stops the process at once, as before
            loop.remove_signal_handler(sig)
        if before_stop is not None:
            try:
                await asyncio.wait_for(before_stop(), stop_deadline_s)
            except TimeoutError:
                log.error("the step before stopping overran %.1fs; stopping anyway", stop_deadline_s)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        try:
            await asyncio.wait_for(runner.cleanup(), stop_deadline_s)
            if inner is not None:
                await asyncio.wait_for(inner.cleanup(), stop_deadline_s)
        except TimeoutError:
            log.error("clean stop overran %.1fs; exiting anyway", stop_deadline_s)
