"""WorkerPool: ``switchboard node --workers N``. One process per core, each running a :class:`Worker`.

The pool is the node's :class:`sfu.types.MediaService`: it places each room on a worker (the least
loaded one when the room is new) and forwards calls over a unix socket (length-prefixed msgpack).
Listener callbacks (renegotiation, peer closed) come back the same way.

Start with ``await pool.start()``, stop with ``await pool.close()`` (children are asked to close,
then terminated if they do not exit; only our own children, by PID).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import multiprocessing
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

import msgpack

from sfu.errors import SfuError, WorkerUnavailable
from sfu.types import IceCandidate, PeerId, ProducerStats, RoomStats, SfuListener
from switchboard.ids import RoomId, UserId

_LEN = struct.Struct("!I")
CALL_TIMEOUT_S = 30.0
"""Longest a worker may take to answer one call (SDP with candidate gathering)."""


async def read_message(reader: asyncio.StreamReader) -> Any:
    size = _LEN.unpack(await reader.readexactly(4))[0]
    return msgpack.unpackb(await reader.readexactly(size))


def write_message(writer: asyncio.StreamWriter, message: Any) -> None:
    data = msgpack.packb(message)
    writer.write(_LEN.pack(len(data)) + data)


def room_stats_from(data: dict[str, Any]) -> RoomStats:
    producers = tuple(ProducerStats(**p) for p in data.pop("producers"))
    return RoomStats(producers=producers, **data)


class WorkerHandle:
    """The parent's end of one worker process."""

    def __init__(self, index: int, process: multiprocessing.process.BaseProcess, path: Path) -> None:
        self.index = index
        self.process = process
        self.path = path
        self.rooms: set[RoomId] = set()
        self.peers = 0
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid

    async def connect(self, listener_ref: list[SfuListener | None], limit_s: float) -> None:
        deadline = asyncio.get_running_loop().time() + limit_s
        while True:
            try:
                self._reader, self._writer = await asyncio.open_unix_connection(str(self.path))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if asyncio.get_running_loop().time() > deadline or not self.process.is_alive():
                    raise WorkerUnavailable(f"worker {self.index} did not start") from None
                await asyncio.sleep(0.05)
        self._task = asyncio.create_task(self._read(listener_ref))

    async def _read(self, listener_ref: list[SfuListener | None]) -> None:
        assert self._reader is not None
        try:
            while True:
                kind, ref, a, b = await read_message(self._reader)
                if kind == "reply":
                    fut = self._pending.pop(ref, None)
                    if fut is not None and not fut.done():
                        if a:
                            fut.set_result(b)
                        else:
                            fut.set_exception(SfuError(b) if not isinstance(b, list) else _error(b))
                elif kind == "notify" and listener_ref[0] is not None:
                    method, room_id, peer_id, *rest = a
                    await getattr(listener_ref[0], method)(RoomId(room_id), PeerId(peer_id), *rest)
        except (asyncio.IncompleteReadError, ConnectionError):
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(WorkerUnavailable(f"worker {self.index} went away"))
            self._pending.clear()

    async def call(self, method: str, *args: Any) -> Any:
        if self._writer is None or self._writer.is_closing():
            raise WorkerUnavailable(f"worker {self.index} is not connected")
        ref = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[ref] = fut
        write_message(self._writer, ["call", ref, method, list(args)])
        return await asyncio.wait_for(fut, CALL_TIMEOUT_S)

    async def close(self) -> None:
        with contextlib.suppress(SfuError, asyncio.TimeoutError, ConnectionError):
            await asyncio.wait_for(self.call("shutdown"), 5)
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.to_thread(self.process.join, 5)
        if self.process.is_alive():
            self.process.terminate()
            await asyncio.to_thread(self.process.join, 5)


def _error(b: list[str]) -> SfuError:
    from sfu import errors

    cls = getattr(errors, b[0], SfuError)
    return cls(b[1]) if isinstance(cls, type) and issubclass(cls, SfuError) else SfuError(b[1])


class WorkerPool:
    """N worker processes behind one MediaService."""

    def __init__(self, *, workers: int, addresses: tuple[str, ...], announced: str = "",
                 redis_url: str | None = None, start_timeout: float = 20.0) -> None:
        self.size = workers if workers > 0 else (os.cpu_count() or 1)
        self.addresses = addresses
        self.announced = announced
        self.redis_url = redis_url
        self.start_timeout = start_timeout
        self.workers: list[WorkerHandle] = []
        self._listener: list[SfuListener | None] = [None]
        self._placement: dict[RoomId, WorkerHandle] = {}
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    async def start(self) -> None:
        from sfu.process import worker_main

        self._tmp = tempfile.TemporaryDirectory(prefix="sfu-")
        ctx = multiprocessing.get_context("spawn")
        for i in range(self.size):
            path = Path(self._tmp.name) / f"w{i}.sock"
            proc = ctx.Process(target=worker_main, name=f"sfu-worker-{i}", daemon=True,
                               args=(str(path), self.addresses, self.announced, self.redis_url))
            await asyncio.to_thread(proc.start)
            self.workers.append(WorkerHandle(i, proc, path))
        for w in self.workers:
            await w.connect(self._listener, self.start_timeout)

    async def close(self) -> None:
        workers, self.workers = self.workers, []
        for w in workers:
            await w.close()
        self._placement.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def pids(self) -> list[int]:
        return [w.pid for w in self.workers if w.pid is not None]

    def _worker(self, room_id: RoomId) -> WorkerHandle:
        w = self._placement.get(room_id)
        if w is None:
            if not self.workers:
                raise WorkerUnavailable("pool not started")
            w = min(self.workers, key=lambda h: (len(h.rooms), h.index))
            w.rooms.add(room_id)
            self._placement[room_id] = w
        return w

    # MediaService ----------------------------------------------------------------------------

    def set_listener(self, listener: SfuListener | None) -> None:
        self._listener[0] = listener

    async def publish(self, room_id: RoomId, peer_id: PeerId, user_id: UserId, offer_sdp: str) -> str:
        return await self._worker(room_id).call("publish", room_id, peer_id, user_id, offer_sdp)

    async def add_ice_candidate(self, room_id: RoomId, peer_id: PeerId, candidate: IceCandidate | None) -> None:
        c = None if candidate is None else dataclasses.astuple(candidate)
        await self._worker(room_id).call("add_ice_candidate", room_id, peer_id, c)

    async def subscribe(self, room_id: RoomId, peer_id: PeerId, user_id: UserId, *, hidden: bool = False) -> str:
        return await self._worker(room_id).call("subscribe", room_id, peer_id, user_id, hidden)

    async def accept_answer(self, room_id: RoomId, peer_id: PeerId, answer_sdp: str) -> None:
        await self._worker(room_id).call("accept_answer", room_id, peer_id, answer_sdp)

    async def renegotiate(self, room_id: RoomId, peer_id: PeerId) -> str | None:
        return await self._worker(room_id).call("renegotiate", room_id, peer_id)

    async def close_peer(self, room_id: RoomId, peer_id: PeerId) -> None:
        if room_id in self._placement:
            await self._placement[room_id].call("close_peer", room_id, peer_id)

    async def close_room(self, room_id: RoomId) -> None:
        w = self._placement.pop(room_id, None)
        if w is not None:
            w.rooms.discard(room_id)
            await w.call("close_room", room_id)

    async def room_stats(self, room_id: RoomId) -> RoomStats:
        if room_id not in self._placement:
            return RoomStats(room_id=room_id, publishers=0, viewers=0)
        return room_stats_from(await self._placement[room_id].call("room_stats", room_id))

    async def worker_counters(self) -> list[dict[str, int]]:
        """Per worker: forwarded packets (all consumers, hidden included), drops, CPU seconds."""
        return [await w.call("counters") for w in self.workers]
