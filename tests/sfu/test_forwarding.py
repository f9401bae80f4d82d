"""Publisher -> SFU -> viewers, with real aiortc peers on 127.0.0.1."""

from __future__ import annotations

import asyncio

from sfu.worker import Worker
from switchboard.ids import RoomId
from tests.sfu.peers import start_publisher, start_viewer

ROOM = RoomId("show")


async def wait_for(predicate, timeout: float) -> None:  # type: ignore[no-untyped-def]  # noqa: ASYNC109
    async def loop() -> None:
        while not predicate():  # noqa: ASYNC110 (polls state owned by aiortc callbacks)
            await asyncio.sleep(0.05)
    await asyncio.wait_for(loop(), timeout)


async def test_three_viewers_decode_moving_frames(worker: Worker) -> None:
    pub = await start_publisher(worker, ROOM, "pub")
    try:
        await wait_for(lambda: len(worker.routers[ROOM].producers) == 2, 10)
        viewers = [await start_viewer(worker, ROOM, f"v{i}") for i in range(3)]
        try:
            for v in viewers:
                await v.wait_frames(30, timeout=20)
            for v in viewers:
                assert v.sizes == {(640, 480)}
                assert len(v.distinct) >= 3, "frames should move"
                assert v.frames["audio"] > 0
            stats = await worker.room_stats(ROOM)
            assert stats.publishers == 1 and stats.viewers == 3
            assert {p.kind for p in stats.producers} == {"audio", "video"}
            assert all(p.consumers == 3 for p in stats.producers)
            assert stats.packets_forwarded > 0
        finally:
            for v in viewers:
                await v.close()
    finally:
        await pub.close()
