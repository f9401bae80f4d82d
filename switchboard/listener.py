"""The node's listening socket, gated: a connect storm is answered at accept, in microseconds.

Refused after the WebSocket upgrade, each connect of a storm cost the node ~150 us (aiohttp's
parser, a task, the upgrade, an error frame, a close), and ~1,000 of them ran in one loop pass: a
250-320 ms stall for every open socket. The gated listener takes the accept loop over:

- it accepts what the kernel holds (up to :data:`ACCEPTS_PER_PASS` per pass) into its own queue;
- it starts (hands to aiohttp) at most ``per_pass`` queued connects per loop pass, and only while the
  node's :class:`Handshakes` have room: the node takes connects as fast as it finishes them, never a
  burst of them at once;
- a connect the queue has no room for, or one that waited ``wait_s``, is refused with a raw
  ``HTTP/1.1 503`` and ``Retry-After``, written with plain socket calls before any HTTP work (~60 us
  of the node's CPU, accept and close included, against ~330 us for an upgrade and a refusal frame).

So the node serves as many connects as its handshakes get through, each within ``wait_s`` plus its
handshake, and refuses the rest at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

log = logging.getLogger("switchboard.listener")

ACCEPTS_PER_PASS = 256
"""Connections taken from the kernel per loop pass (queued or refused: a few us each)."""
LINGER_S = 0.5
"""A refused socket stays open this long after its 503 (then is closed): closed at once, with the
client's request unread, the kernel would answer with a reset that can beat the 503 to the client."""
DEFER_ACCEPT_S = 5
"""The kernel holds a connection with no request yet this long before the listener sees it."""
STALE_S = 5.0
"""A started connect that never reached the gateway (another path, a client gone) stops counting after this."""


class Handshakes:
    """Connects under way on a node: started by the listener and not yet at the gateway
    (:meth:`started`, :meth:`claim`), then between upgrade and ``hello`` or refusal (``upgrading``,
    counted by the gateway). The listener starts a connect only while :meth:`room` says so."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        """Connects under way at most (``node.ws_max_handshakes``)."""
        self.upgrading = 0
        """Connects between the gateway's upgrade and their ``hello`` or refusal."""
        self._started: deque[float] = deque()
        self._on_room: Callable[[], None] | None = None

    def started(self, now: float) -> None:
        """The listener handed one connect to the HTTP server."""
        self._started.append(now)

    def claim(self) -> None:
        """The gateway took a started connect (the oldest; any one would do)."""
        if self._started:
            self._started.popleft()

    def finished(self) -> None:
        """A connect the gateway counted in ``upgrading`` ended (``hello`` or refusal)."""
        self.upgrading -= 1
        if self._on_room is not None:
            self._on_room()

    def room(self, now: float) -> int:
        """How many more connects may start now."""
        while self._started and now - self._started[0] > STALE_S:
            self._started.popleft()
        return self.limit - self.upgrading - len(self._started)

    def when_room(self, callback: Callable[[], None] | None) -> None:
        """``callback`` runs (synchronously) each time a connect finishes."""
        self._on_room = callback


@dataclass(frozen=True)
class GateLimits:
    """How the gated listener queues and refuses (from ``node.ws_gate_*``)."""

    per_pass: int
    """Connects started per loop pass at most."""
    queue: int
    """Accepted connects waiting for room at most; more are refused at once."""
    wait_s: float
    """Longest wait in the queue; a connect that waited longer is refused."""
    retry_after_s: int
    """``Retry-After`` of the 503 (whole seconds)."""
    rate_per_s: float = 0.0
    """Connects started per second at most (a bucket of one second's worth); 0: no limit."""


def refusal(retry_after_s: int) -> bytes:
    """The bytes of a refusal: a complete HTTP response, the body in the node's error vocabulary."""
    body = json.dumps({"code": "overloaded", "retry_after": retry_after_s,
                       "message": f"overloaded: retry after {retry_after_s} s"}).encode()
    return (f"HTTP/1.1 503 Service Unavailable\r\nRetry-After: {retry_after_s}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            ).encode() + body


class GatedListener(asyncio.AbstractServer):
    """Accepts on ``sock`` for ``factory`` (aiohttp's server), through :class:`Handshakes` and
    :class:`GateLimits`. ``close()`` is safe to call twice."""

    def __init__(self, sock: socket.socket, factory: Callable[[], asyncio.Protocol], handshakes: Handshakes,
                 limits: GateLimits) -> None:
        self._sock = sock
        self._factory = factory
        self._handshakes = handshakes
        self._limits = limits
        self._refusal = refusal(limits.retry_after_s)
        self._queue: deque[tuple[socket.socket, float]] = deque()
        self._lingering: deque[tuple[socket.socket, float]] = deque()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop = asyncio.get_running_loop()
        self._pass_pending = False
        self._linger_handle: asyncio.TimerHandle | None = None
        self._serving = False
        self._tokens, self._filled = max(1.0, limits.rate_per_s), time.monotonic()
        self.refused = 0
        """Connects refused with a 503 since start."""

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return (self._sock,) if self._serving else ()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    async def start_serving(self) -> None:
        if not self._serving:
            self._serving = True
            self._sock.setblocking(False)
            self._handshakes.when_room(self._schedule)
            self._loop.add_reader(self._sock.fileno(), self._readable)

    def close(self) -> None:
        if not self._serving:
            return
        self._serving = False
        self._handshakes.when_room(None)
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        while self._queue:
            self._refuse(self._queue.popleft()[0])
        if self._linger_handle is not None:
            self._linger_handle.cancel()
            self._linger_handle = None
        while self._lingering:
            self._lingering.popleft()[0].close()

    async def wait_closed(self) -> None:
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task

    async def serve_forever(self) -> None:  # pragma: no cover - aiohttp never calls it
        raise NotImplementedError

    # --- the accept loop -----------------------------------------------------------------------------

    def _readable(self) -> None:
        now = time.monotonic()
        queue, limit = self._queue, self._limits.queue
        for _ in range(ACCEPTS_PER_PASS):
            try:
                conn, _addr = self._sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                break
            except OSError as exc:  # out of descriptors: what waits in the kernel waits for the next pass
                log.warning("accept failed: %s", exc)
                break
            if len(queue) < limit:
                queue.append((conn, now))
            else:
                self._refuse(conn)
        self._start_queued(now)

    def _schedule(self) -> None:
        """Room opened: start queued connects in the next loop pass (once, however many finished)."""
        if self._queue and not self._pass_pending and self._serving:
            self._pass_pending = True
            self._loop.call_soon(self._next_pass)

    def _next_pass(self) -> None:
        self._pass_pending = False
        if self._serving:
            self._start_queued(time.monotonic())

    def _start_queued(self, now: float) -> None:
        queue, too_old = self._queue, now - self._limits.wait_s
        budget = ACCEPTS_PER_PASS  # a queue that aged out at once is refused over a few passes
        while queue and queue[0][1] < too_old and budget:
            self._refuse(queue.popleft()[0])
            budget -= 1
        room = min(self._limits.per_pass, self._handshakes.room(now), self._rate_room(now))
        while queue and room > 0:
            self._start(queue.popleft()[0], now)
            room -= 1
        # The pass's share is spent (refusals, or starts while there is room): go on next pass.
        more = not budget or (room <= 0 and self._handshakes.room(now) > 0)
        if queue and more and not self._pass_pending:
            self._pass_pending = True
            if budget and self._rate_room(now) <= 0:  # the rate binds: come back when a token is due
                self._loop.call_later((1.0 - self._tokens) / self._limits.rate_per_s, self._next_pass)
            else:
                self._loop.call_soon(self._next_pass)
        if queue and self._linger_handle is None:
            self._arm_linger()  # a queue with no room and no finish to come still ages out

    def _rate_room(self, now: float) -> int:
        """Starts the connect rate allows now (``rate_per_s`` 0: no bound)."""
        rate = self._limits.rate_per_s
        if not rate:
            return ACCEPTS_PER_PASS
        self._tokens = min(max(1.0, rate), self._tokens + (now - self._filled) * rate)
        self._filled = now
        return int(self._tokens)

    def _start(self, conn: socket.socket, now: float) -> None:
        if self._limits.rate_per_s:
            self._tokens -= 1
        try:
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # the client is gone already
            conn.close()
            return
        self._handshakes.started(now)
        task = self._loop.create_task(self._loop.connect_accepted_socket(self._factory, conn))
        self._tasks.add(task)
        task.add_done_callback(self._started)

    def _started(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.info("a connect ended before it was served: %s", task.exception())

    # --- refusals ------------------------------------------------------------------------------------

    def _refuse(self, conn: socket.socket) -> None:
        self.refused += 1
        try:
            conn.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                conn.recv(65536)
            conn.send(self._refusal)
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            conn.close()
            return
        self._lingering.append((conn, time.monotonic()))
        if self._linger_handle is None:
            self._arm_linger()

    def _arm_linger(self) -> None:
        self._linger_handle = self._loop.call_later(LINGER_S / 2, self._linger_tick)

    def _linger_tick(self) -> None:
        self._linger_handle = None
        now = time.monotonic()
        lingering, budget = self._lingering, ACCEPTS_PER_PASS
        while lingering and now - lingering[0][1] >= LINGER_S and budget:
            conn = lingering.popleft()[0]
            with contextlib.suppress(OSError):
                conn.recv(65536)
            conn.close()
            budget -= 1
        if self._queue:
            self._start_queued(now)
        if (lingering or self._queue) and self._linger_handle is None and self._serving:
            if budget:
                self._arm_linger()
            else:  # more are due: close them over the next passes, not in this one
                self._linger_handle = self._loop.call_later(0, self._linger_tick)


class GatedSite(web.BaseSite):
    """An aiohttp site on a :class:`GatedListener` (in place of ``web.TCPSite``)."""

    __slots__ = ("_gate", "_handshakes", "_host", "_port")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, backlog: int, handshakes: Handshakes,
                 limits: GateLimits) -> None:
        super().__init__(runner, backlog=backlog)
        self._host, self._port = host, port
        self._handshakes, self._gate = handshakes, limits

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.create_server((self._host, self._port), family=family, backlog=self._backlog)
        if hasattr(socket, "TCP_DEFER_ACCEPT"):
            # Accept a connection once its request is there: a slot never waits on a slow client's
            # first bytes (Linux; the seconds bound how long an idle connection stays unaccepted).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, DEFER_ACCEPT_S)
        server = self._runner.server
        assert server is not None
        listener = GatedListener(sock, server, self._handshakes, self._gate)
        await listener.start_serving()
        self._server = listener
