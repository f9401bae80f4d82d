"""Server frames: events as async iterators (each :class:`EventStream` gets every event sent after it
was made) and replies matched to the requests that wait for them (:class:`Replies`)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

from switchboard_client.errors import ClosedError, NodeError

Event = dict[str, Any]
"""One server message (``{"type": ..., ...}``, docs/protocol.md)."""

_END: Event = {"type": "__end__"}


class EventStream:
    """Server events of one node socket, in order, from the moment the stream was made.

    ``async for event in stream`` ends when the stream or its node client closes. ``types`` and
    ``where`` narrow what is kept. Close a stream you no longer read (``with`` does it).
    """

    def __init__(self, types: tuple[str, ...], where: Callable[[Event], bool] | None,
                 on_close: Callable[[EventStream], None]) -> None:
        self._types = types
        self._where = where
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._on_close = on_close
        self._closed = False

    def offer(self, event: Event) -> None:
        """Keeps ``event`` when it matches (called by the node client)."""
        if self._closed:
            return
        if self._types and event.get("type") not in self._types:
            return
        if self._where is not None and not self._where(event):
            return
        self._queue.put_nowait(event)

    def end(self) -> None:
        """No more events: readers finish after what is queued."""
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(_END)

    def close(self) -> None:
        self.end()
        self._on_close(self)

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        event = await self._queue.get()
        if event is _END:
            self._queue.put_nowait(_END)  # later readers end too
            raise StopAsyncIteration
        return event

    async def next(self) -> Event:
        """The next event; :class:`ClosedError` when the stream ended (bound it with ``asyncio.timeout``)."""
        try:
            return await self.__anext__()
        except StopAsyncIteration:
            raise ClosedError("the event stream ended") from None

    async def wait_for(self, *types: str, where: Callable[[Event], bool] | None = None) -> Event:
        """Skips events until one of ``types`` (and ``where``) arrives; :class:`ClosedError` if the stream ends."""
        async for event in self:
            if (not types or event.get("type") in types) and (where is None or where(event)):
                return event
        raise ClosedError(f"the event stream ended before {types}")

    def take(self, where: Callable[[Event], bool]) -> list[Event]:
        """Removes and returns the queued events that match ``where`` (to hand them to another stream)."""
        kept: list[Event] = []
        taken: list[Event] = []
        while not self._queue.empty():
            event = self._queue.get_nowait()
            (taken if event is not _END and where(event) else kept).append(event)
        for event in kept:
            self._queue.put_nowait(event)
        return taken

    def put_back(self, events: list[Event]) -> None:
        """Queues ``events`` ahead of anything that arrives later (only on an empty, new stream)."""
        for event in events:
            self._queue.put_nowait(event)


class Replies:
    """Requests sent with an ``id``, each waiting for the ``reply`` or ``error`` frame that names it (``ref``)."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Event]] = {}

    def expect(self) -> tuple[int, asyncio.Future[Event]]:
        """A new request id and the future its answer settles; :meth:`forget` it when done waiting."""
        ref = next(self._ids)
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._pending[ref] = future
        return ref, future

    def forget(self, ref: int) -> None:
        self._pending.pop(ref, None)

    def settle(self, frame: Event) -> bool:
        """Answers the request ``frame`` replies to: the ``reply`` without ``type``/``ref``, or the
        ``error`` as :class:`NodeError`. False when ``frame`` answers no waiting request."""
        ref = frame.get("ref")
        if frame.get("type") not in ("reply", "error") or not isinstance(ref, int) or ref not in self._pending:
            return False
        future = self._pending.pop(ref)
        if not future.done():
            if frame["type"] == "reply":
                future.set_result({k: v for k, v in frame.items() if k not in ("type", "ref")})
            else:
                future.set_exception(NodeError(str(frame.get("code")), str(frame.get("message")), frame))
        return True

    def fail(self, exc: Exception) -> None:
        """Every waiting request fails with ``exc`` (the socket dropped, the client closed)."""
        for future in self._pending.values():
            if not future.done():
                future.set_exception(exc)
        self._pending.clear()
