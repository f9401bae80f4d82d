"""A lean open-loop HTTP/1.1 load client (keep-alive, one request per connection at a time).

aiohttp's client spends ~0.3 ms of CPU per request; on a 2-core box that shares its cores with the
server under test it would eat the capacity it measures. This one writes pre-built request bytes
and parses only the status line, the headers it needs and a Content-Length body.

Open loop: requests leave on the schedule, never waiting for earlier answers. A request that finds
no idle connection opens a new one (up to ``max_connections``); past that it waits client-side, and
its latency counts the wait (the client's schedule, not the server's view, is what a user sees).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Outcome:
    """One request's fate."""

    started: float
    """perf_counter() when it was due to leave."""
    status: int = 0
    """HTTP status; 0: the connection failed."""
    elapsed: float = 0.0
    """Seconds from due to the last byte of the answer."""
    retry_after: str | None = None


class _Conn(asyncio.Protocol):
    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.current: tuple[Outcome, asyncio.Future[None]] | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if not self.ready.done():
            self.ready.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.ready.done():
            self.ready.set_exception(exc or ConnectionError("closed"))
        if self.current is not None:
            outcome, fut = self.current
            self.current = None
            outcome.status = 0
            outcome.elapsed = time.perf_counter() - outcome.started
            if not fut.done():
                fut.set_result(None)
        self._pool.lost(self)

    def send(self, request: bytes, outcome: Outcome, fut: asyncio.Future[None]) -> None:
        self.current = (outcome, fut)
        assert self.transport is not None
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        while True:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._buf[:end]).split(b"\r\n")
            length, retry = 0, None
            for line in head[1:]:
                name, _, value = line.partition(b":")
                lname = name.strip().lower()
                if lname == b"content-length":
                    length = int(value)
                elif lname == b"retry-after":
                    retry = value.strip().decode()
            if len(self._buf) < end + 4 + length:
                return
            del self._buf[: end + 4 + length]
            if self.current is None:
                continue
            outcome, fut = self.current
            self.current = None
            outcome.status = int(head[0].split(b" ", 2)[1])
            outcome.retry_after = retry
            outcome.elapsed = time.perf_counter() - outcome.started
            fut.set_result(None)
            self._pool.idle(self)


@dataclass
class Pool:
    """Keep-alive connections to one server."""

    host: str
    port: int
    max_connections: int = 512
    _idle: deque[_Conn] = field(default_factory=deque)
    _open: int = 0
    _waiting: deque[asyncio.Future[_Conn]] = field(default_factory=deque)

    async def _get(self) -> _Conn:
        while self._idle:
            conn = self._idle.pop()
            if conn.transport is not None:
                return conn
        if self._open < self.max_connections:
            self._open += 1
            loop = asyncio.get_running_loop()
            try:
                _, conn = await loop.create_connection(lambda: _Conn(self), self.host, self.port)
            except OSError:
                self._open -= 1
                raise
            return conn
        fut: asyncio.Future[_Conn] = asyncio.get_running_loop().create_future()
        self._waiting.append(fut)
        return await fut

    def idle(self, conn: _Conn) -> None:
        while self._waiting:
            fut = self._waiting.popleft()
            if not fut.done():
                fut.set_result(conn)
                return
        self._idle.append(conn)

    def lost(self, conn: _Conn) -> None:
        self._open -= 1

    async def request(self, raw: bytes, outcome: Outcome) -> Outcome:
        try:
            conn = await self._get()
        except OSError:
            outcome.elapsed = time.perf_counter() - outcome.started
            return outcome
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        conn.send(raw, outcome, fut)
        await fut
        return outcome

    def close(self) -> None:
        for conn in self._idle:
            if conn.transport is not None:
                conn.transport.close()
        self._idle.clear()


def build(method: str, host: str, port: int, path: str, headers: dict[str, str] | None = None,
          body: bytes = b"") -> bytes:
    """Request bytes, ready to write."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def open_loop(pool: Pool, requests: list[bytes], rps: float, seconds: float) -> list[Outcome]:
    """Sends ``requests`` round-robin at ``rps`` for ``seconds``; every outcome, in send order."""
    outcomes: list[Outcome] = []
    tasks: list[asyncio.Task[Outcome]] = []
    total = int(rps * seconds)
    start = time.perf_counter()
    loop = asyncio.get_running_loop()
    for i in range(total):
        due = start + i / rps
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        outcome = Outcome(started=due)
        outcomes.append(outcome)
        tasks.append(loop.create_task(pool.request(requests[i % len(requests)], outcome)))
    await asyncio.gather(*tasks)
    return outcomes


async def _phase_in_process(host: str, port: int, requests: list[bytes], rps: float, seconds: float,
                            start_wall: float, max_connections: int) -> list[Outcome]:
    pool = Pool(host, port, max_connections=max_connections)
    try:
        # Open the connections before the start, like the one-process client's warm-up does.
        warm = [Outcome(time.perf_counter()) for _ in range(min(8, max_connections))]
        await asyncio.gather(*(pool.request(requests[0], o) for o in warm))
        await asyncio.sleep(max(0.0, start_wall - time.time()))
        shift = time.time() - time.perf_counter()
        outcomes = await open_loop(pool, requests, rps, seconds)
    finally:
        pool.close()
    for o in outcomes:
        o.started += shift  # wall clock: the processes' outcomes share one time line
    return outcomes


def phase_main(host: str, port: int, requests: list[bytes], rps: float, seconds: float, start_wall: float,
               max_connections: int, out: Any) -> None:
    """One client process of a phase: its share of the rate, its outcomes back through ``out``."""
    import uvloop

    out.put(uvloop.run(_phase_in_process(host, port, requests, rps, seconds, start_wall, max_connections)))


def run_phase(host: str, port: int, requests: list[bytes], rps: float, seconds: float, processes: int,
              max_connections: int) -> list[Outcome]:
    """The phase spread over ``processes`` client processes (each ``rps / processes``), all starting
    together; every outcome, with wall-clock ``started``, in time order."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    out: Any = ctx.Queue()
    start_wall = time.time() + 1.5 + 0.2 * processes
    procs = [ctx.Process(target=phase_main, args=(host, port, requests[i::processes] or requests, rps / processes,
                                                  seconds, start_wall, max(1, max_connections // processes), out))
             for i in range(processes)]
    for p in procs:
        p.start()
    outcomes = [o for _ in procs for o in out.get(timeout=seconds + 120)]
    for p in procs:
        p.join(10)
    return sorted(outcomes, key=lambda o: o.started)
