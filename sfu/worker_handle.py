"""A worker process seen from its pool: its unix socket, the calls waiting on it, its listener callbacks.

:class:`sfu.pool.WorkerPool` spawns the process and owns each handle; ``connect()`` opens the socket
(retrying until the child listens), ``call()`` sends one request and waits for its answer (at most
:data:`CALL_TIMEOUT_S`), ``close()`` asks the child to shut down, then terminates it if it does not
exit (our own child, by its process object).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sfu import errors
from sfu.errors import SfuError, WorkerUnavailable
from sfu.framing import read_message, write_message
from sfu.types import PeerId
from switchboard.ids import RoomId

log = logging.getLogger("sfu.pool")
CALL_TIMEOUT_S = 30.0
"""Longest a worker may take to answer one call (SDP with candidate gathering)."""


Notify = Callable[[str, RoomId, PeerId, list[Any]], Awaitable[None]]
"""The pool's handler of a worker's listener callback (method name, room, peer, other arguments)."""


class WorkerHandle:
    """The parent's end of one worker process."""

    def __init__(self, index: int, process: multiprocessing.process.BaseProcess, path: Path) -> None:
        self.index = index
        self.process = process
        self.path = path
        self.peers = 0
        """Peers (publishers, viewers, taps) placed on this worker."""
        self.lost = False
        """The process went away (its socket closed) without being asked to."""
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid

    async def connect(self, notify: Notify, limit_s: float, on_lost: Callable[[WorkerHandle], None]) -> None:
        deadline = asyncio.get_running_loop().time() + limit_s
        while True:
            try:
                self._reader, self._writer = await asyncio.open_unix_connection(str(self.path))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if asyncio.get_running_loop().time() > deadline or not self.process.is_alive():
                    raise WorkerUnavailable(f"worker {self.index} did not start") from None
                await asyncio.sleep(0.05)
        self._task = asyncio.create_task(self._read(notify, on_lost))

    async def _read(self, notify: Notify, on_lost: Callable[[WorkerHandle], None]) -> None:
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
                elif kind == "notify":
                    method, room_id, peer_id, *rest = a
                    try:
                        await notify(method, RoomId(room_id), PeerId(peer_id), rest)
                    except Exception:  # signaling's failure must not stop the replies
                        log.exception("sfu listener %s failed", method)
        except (asyncio.IncompleteReadError, ConnectionError):
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(WorkerUnavailable(f"worker {self.index} went away"))
            self._pending.clear()
            self.lost = True
            on_lost(self)

    async def call(self, method: str, *args: Any) -> Any:
        if self._writer is None or self._writer.is_closing():
            raise WorkerUnavailable(f"worker {self.index} is not connected")
        ref = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[ref] = fut
        write_message(self._writer, ["call", ref, method, list(args)])
        try:
            return await asyncio.wait_for(fut, CALL_TIMEOUT_S)
        except TimeoutError:
            self._pending.pop(ref, None)
            raise WorkerUnavailable(f"worker {self.index} did not answer {method} in {CALL_TIMEOUT_S:g} s") from None

    async def close(self) -> None:
        if not self.lost:
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
    cls = getattr(errors, b[0], SfuError)
    return cls(b[1]) if isinstance(cls, type) and issubclass(cls, SfuError) else SfuError(b[1])
