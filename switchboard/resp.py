"""A lean Redis client for hot paths: one pipelined connection, hiredis to pack and parse.

redis-py's asyncio client costs ~115 us of CPU per command on this machine (connection pool checkout
and release, retries, timeouts, event dispatch, per-command callbacks), against ~18 us for the same
round trip written and parsed here. The control API's token routes send several commands per request
(the account's standing, the room's live show and node pin, the node registry, rate-limit counts), so
they go through this client; everything else (pub/sub, streams, Lua, transactions) stays on redis-py.

It speaks for a single Redis only (``redis://``, ``rediss://``, ``unix://``): :func:`open_hot_redis`
returns redis-py's own client for a cluster URL. It answers the subset of redis-py's asyncio API the
hot paths use, with the same return values (``bytes`` values, ``dict`` for HGETALL, ``bool`` for SET
and EXPIRE): ``get``, ``mget``, ``hgetall``, ``set``, ``incr``/``incrby``, ``expire``, ``zrange``,
``zremrangebyscore``, ``execute_command`` and ``pipeline(transaction=False)``. Failures raise
redis-py's exceptions (``ConnectionError``, ``ResponseError``), so callers catch what they caught before.

Commands are written at the end of the loop pass that made them: the requests of one pass share one
write (and usually one read). Redis answers in order, so replies are matched to a FIFO of futures.
A lost connection fails every command in flight; the next command connects again.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import deque
from collections.abc import Sequence
from types import TracebackType
from typing import Any, cast
from urllib.parse import unquote, urlparse

import hiredis
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

Arg = str | bytes | int | float


CLOSE_S = 2.0
"""How long :meth:`Resp.aclose` waits for the connection to end before cutting it."""


class _Protocol(asyncio.Protocol):
    """One connection: writes pipelined commands, matches replies to waiting futures in order."""

    def __init__(self) -> None:
        self._reader = hiredis.Reader()
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.out: list[bytes] = []
        """Commands made in this loop pass, written together at its end."""
        self.transport: asyncio.Transport | None = None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def queue(self, packed: bytes) -> asyncio.Future[Any]:
        """The future of one packed command's reply; the command leaves at the end of this pass."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self.transport is None:
            future.set_exception(RedisConnectionError("connection to Redis lost"))
            return future
        self.waiting.append(future)
        if not self.out:
            loop.call_soon(self._flush)
        self.out.append(packed)
        return future

    def _flush(self) -> None:
        out, self.out = self.out, []
        if self.transport is not None and out:
            self.transport.write(b"".join(out))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family != socket.AF_UNIX:  # as open_redis: a dead peer is noticed
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while True:
            try:
                reply = self._reader.gets()
            except hiredis.ProtocolError as exc:
                self._fail(RedisConnectionError(f"unreadable reply: {exc}"))
                if self.transport is not None:
                    self.transport.close()
                return
            if reply is False:
                return
            if not self.waiting:  # a reply nobody asked for: the stream is out of step
                self._fail(RedisConnectionError("unexpected reply from Redis"))
                if self.transport is not None:
                    self.transport.close()
                return
            future = self.waiting.popleft()
            if future.done():  # its caller went away
                continue
            if isinstance(reply, hiredis.ReplyError):
                future.set_exception(ResponseError(str(reply)))
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.out = []
        self._fail(RedisConnectionError(f"connection to Redis lost: {exc or 'closed'}"))
        if not self.lost.done():
            self.lost.set_result(None)

    def _fail(self, exc: Exception) -> None:
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(exc)


class Resp:
    """A pipelined connection to one Redis server, opened on first use. Close with :meth:`aclose`."""

    def __init__(self, url: str) -> None:
        parts = urlparse(url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"not a single-Redis URL: {parts.scheme}://")
        self._unix = parts.path if parts.scheme == "unix" else ""
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 6379
        self._ssl = ssl.create_default_context() if parts.scheme == "rediss" else None
        self._username = unquote(parts.username) if parts.username else ""
        self._password = unquote(parts.password) if parts.password else ""
        db = parts.path.strip("/") if parts.scheme != "unix" else ""
        self._db = int(db) if db.isdigit() else 0
        self._conn: _Protocol | None = None
        self._connecting: asyncio.Task[_Protocol] | None = None
        self._closed = False

    # --- the redis-py subset -------------------------------------------------------------------------

    async def execute_command(self, *args: Arg) -> Any:
        conn = self._conn if self._conn is not None and self._conn.transport is not None else await self._connect()
        return await conn.queue(_pack(args))

    async def get(self, key: str) -> bytes | None:
        return cast(bytes | None, await self.execute_command("GET", key))

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        return cast(list[bytes | None], await self.execute_command("MGET", *keys))

    async def hgetall(self, key: str) -> dict[bytes, bytes]:
        return _pairs(await self.execute_command("HGETALL", key))

    async def set(self, key: str, value: Arg, *, ex: int | None = None, nx: bool = False) -> bool | None:
        return _ok(await self.execute_command("SET", key, value, *_set_options(ex, nx)))

    async def incrby(self, key: str, amount: int = 1) -> int:
        return cast(int, await self.execute_command("INCRBY", key, amount))

    async def expire(self, key: str, seconds: int) -> bool:
        return bool(await self.execute_command("EXPIRE", key, seconds))

    def pipeline(self, transaction: bool = False) -> RespPipeline:
        """Commands sent together, replies in order (no MULTI: ``transaction`` must be False)."""
        if transaction:
            raise ValueError("Resp pipelines are not transactions: use redis-py for MULTI/EXEC")
        return RespPipeline(self)

    async def aclose(self) -> None:
        """Closes the connection (commands in flight fail). Safe to call twice."""
        self._closed = True
        if self._connecting is not None:
            self._connecting.cancel()
            self._connecting = None
        conn, self._conn = self._conn, None
        if conn is not None and conn.transport is not None:
            transport = conn.transport
            transport.close()
            try:  # a peer that stops reading keeps a close waiting on its buffer: then cut the connection
                await asyncio.wait_for(asyncio.shield(conn.lost), CLOSE_S)
            except TimeoutError:
                transport.abort()

    # --- the machinery -------------------------------------------------------------------------------

    async def send_many(self, commands: Sequence[Sequence[Arg]]) -> list[Any]:
        """Every command's reply (or its ResponseError) in order; written together."""
        conn = self._conn if self._conn is not None and self._conn.transport is not None else await self._connect()
        futures = [conn.queue(_pack(c)) for c in commands]
        done = await asyncio.gather(*futures, return_exceptions=True)
        for reply in done:
            if isinstance(reply, RedisConnectionError):
                raise reply
        return list(done)

    async def _connect(self) -> _Protocol:
        if self._closed:
            raise RedisConnectionError("the client is closed")
        if self._connecting is None:
            self._connecting = asyncio.get_running_loop().create_task(self._open())
        task = self._connecting
        try:
            return await asyncio.shield(task)
        finally:
            if task.done() and self._connecting is task:
                self._connecting = None

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        try:
            if self._unix:
                _, conn = await loop.create_unix_connection(_Protocol, self._unix)
            else:
                _, conn = await loop.create_connection(_Protocol, self._host, self._port, ssl=self._ssl)
        except OSError as exc:
            raise RedisConnectionError(f"cannot connect to Redis: {exc}") from None
        hello: list[tuple[Arg, ...]] = []
        if self._password:
            hello.append(("AUTH", self._username, self._password) if self._username else ("AUTH", self._password))
        if self._db:
            hello.append(("SELECT", self._db))
        try:
            for command in hello:
                await conn.queue(_pack(command))  # a refusal raises ResponseError
        except BaseException:
            if conn.transport is not None:
                conn.transport.close()
            raise
        self._conn = conn
        return conn


class RespPipeline:
    """redis-py's non-transactional pipeline, for the commands :class:`Resp` answers."""

    def __init__(self, client: Resp) -> None:
        self._client = client
        self._commands: list[tuple[Arg, ...]] = []
        self._shapes: list[str] = []

    async def __aenter__(self) -> RespPipeline:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self._commands.clear()

    def _add(self, shape: str, *args: Arg) -> RespPipeline:
        self._commands.append(args)
        self._shapes.append(shape)
        return self

    def get(self, key: str) -> RespPipeline:
        return self._add("raw", "GET", key)

    def mget(self, keys: Sequence[str]) -> RespPipeline:
        return self._add("raw", "MGET", *keys)

    def hgetall(self, key: str) -> RespPipeline:
        return self._add("pairs", "HGETALL", key)

    def set(self, key: str, value: Arg, *, ex: int | None = None, nx: bool = False) -> RespPipeline:
        return self._add("ok", "SET", key, value, *_set_options(ex, nx))

    def incr(self, key: str, amount: int = 1) -> RespPipeline:
        return self._add("raw", "INCRBY", key, amount)

    def incrby(self, key: str, amount: int = 1) -> RespPipeline:
        return self._add("raw", "INCRBY", key, amount)

    def expire(self, key: str, seconds: int) -> RespPipeline:
        return self._add("bool", "EXPIRE", key, seconds)

    def zrange(self, key: str, start: int, end: int) -> RespPipeline:
        return self._add("raw", "ZRANGE", key, start, end)

    def zremrangebyscore(self, key: str, low: Arg, high: Arg) -> RespPipeline:
        return self._add("raw", "ZREMRANGEBYSCORE", key, low, high)

    async def execute(self) -> list[Any]:
        """The replies in order; the first error reply raises (as redis-py's ``raise_on_error``)."""
        commands, shapes = self._commands, self._shapes
        self._commands, self._shapes = [], []
        if not commands:
            return []
        replies = await self._client.send_many(commands)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return [_SHAPES[shape](reply) for shape, reply in zip(shapes, replies, strict=True)]


def _pack(args: Sequence[Arg]) -> bytes:
    """One command in RESP (hiredis; its stub types the argument as a 1-tuple)."""
    return hiredis.pack_command(cast(Any, tuple(args)))


def _set_options(ex: int | None, nx: bool) -> tuple[Arg, ...]:
    return (*(("EX", ex) if ex is not None else ()), *(("NX",) if nx else ()))


def _pairs(reply: Any) -> dict[bytes, bytes]:
    items = reply or []
    return dict(zip(items[::2], items[1::2], strict=True))


def _ok(reply: Any) -> bool | None:
    return True if reply == b"OK" else None


_SHAPES = {"raw": lambda r: r, "pairs": _pairs, "ok": _ok, "bool": bool}


def open_hot_redis(url: str, fallback: aioredis.Redis) -> aioredis.Redis:
    """The client for hot-path commands: a :class:`Resp` on a single Redis, ``fallback`` (redis-py,
    which routes by slot) on a cluster. Typed as redis-py's client: callers use only the subset
    :class:`Resp` answers (see the module's docstring)."""
    scheme = url.partition("://")[0]
    if scheme not in ("redis", "rediss", "unix"):
        return fallback
    return cast(aioredis.Redis, Resp(url))
