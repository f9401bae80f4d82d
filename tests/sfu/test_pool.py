"""The multi-process pool: rooms placed on worker processes, driven through the MediaService protocol."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest

from sfu.errors import NegotiationError
from sfu.pool import WorkerPool
from sfu.types import PeerId
from switchboard.ids import RoomId, UserId
from tests.sfu.peers import start_publisher, start_viewer


@pytest.fixture
async def pool() -> AsyncIterator[WorkerPool]:
    p = WorkerPool(workers=2, addresses=("127.0.0.1",))
    await p.start()
    yield p
    pids = p.pids()
    await p.close()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def test_two_rooms_on_two_worker_processes(pool: WorkerPool) -> None:
    rooms = [RoomId("a"), RoomId("b")]
    pubs, viewers = [], []
    try:
        for room in rooms:
            pubs.append(await start_publisher(pool, room, "pub", audio=False, size=(320, 240)))
        for room in rooms:
            for _ in range(100):
                if (await pool.room_stats(room)).producers:
                    break
                await asyncio.sleep(0.05)
            viewers.append(await start_viewer(pool, room, "v"))
        for v in viewers:
            await v.wait_frames(10, timeout=20)
        assert {pool._placement[r].index for r in rooms} == {0, 1}
        counters = await pool.worker_counters()
        assert all(c["forwarded"] > 0 for c in counters)
        assert len({c["pid"] for c in counters}) == 2
        with pytest.raises(NegotiationError):
            await pool.publish(rooms[0], PeerId("bad"), UserId("u"), "not sdp")
        stats = await pool.room_stats(rooms[0])
        assert stats.viewers == 1 and stats.publishers == 1
    finally:
        for v in viewers:
            await v.close()
        for p in pubs:
            await p.close()
        for room in rooms:
            await pool.close_room(room)
