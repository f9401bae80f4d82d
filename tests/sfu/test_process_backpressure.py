"""A worker process's notifications to its parent wait for the socket (issue 12, item 20: the
undrained writer): a parent that stops reading holds the worker's listener back instead of letting
its buffer grow without bound, and nothing is lost once the parent reads again."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from sfu.framing import read_message
from sfu.process import PoolListener
from sfu.types import PeerId
from switchboard.ids import RoomId

FANOUT_PATHS = ()
"""No Worker or WorkerPool here: the fan-out setting does not reach these tests; one run (tests/conftest.py)."""

NOTES = 2_000
REASON = "x" * 1_000
"""About 2 MB in all: far past a unix socket's buffer and the stream's 64 KiB high-water mark."""
HELD_S = 3.0
"""How long a parent that reads nothing is given to show that the notes are held back (an upper
bound on a wait: undrained, all of them are written in a few milliseconds)."""


async def test_a_parent_that_reads_nothing_holds_the_workers_notes_back(tmp_path: Path) -> None:
    path = str(tmp_path / "w.sock")
    parent: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

    async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await parent.put((reader, writer))

    server = await asyncio.start_unix_server(accepted, path)
    _, writer = await asyncio.open_unix_connection(path)  # the worker's end
    reader, parent_writer = await asyncio.wait_for(parent.get(), 10)
    listener = PoolListener(writer)
    sent = 0

    async def notify_all() -> None:
        nonlocal sent
        for _ in range(NOTES):
            await listener.peer_closed(RoomId("r"), PeerId(f"p{sent}"), REASON)
            sent += 1

    task = asyncio.create_task(notify_all())
    try:
        done, _ = await asyncio.wait({task}, timeout=HELD_S)
        assert not done, "every note was written although the parent read none of them"
        high = writer.transport.get_write_buffer_limits()[1]
        assert writer.transport.get_write_buffer_size() <= high + len(REASON) + 64
        assert sent < NOTES

        got = [await read_message(reader) for _ in range(NOTES)]  # the parent reads again: all arrive, in order
        await asyncio.wait_for(task, 30)
        assert [note[2][2] for note in got] == [f"p{i}" for i in range(NOTES)]
        assert all(note[:2] == ["notify", 0] and note[2][0] == "peer_closed" for note in got)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for end in (writer, parent_writer):
            end.transport.abort()  # a close would wait for what the parent never read
            with contextlib.suppress(ConnectionError):
                await end.wait_closed()
        server.close()
        await server.wait_closed()
