"""A sealed pipe between two nodes' SFUs (two in-process workers here, set up as the cascade does):
an edge's viewer decodes the origin's publisher; the edge answers its viewers' NACKs from its own
cache; a visible viewer's PLI reaches the origin's publisher through the pipe, a hidden tap's never
does (it starts at the origin's scheduled keyframe); without the secret a worker opens no such pipe."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from sfu import aiortc_private
from sfu.errors import SfuError
from sfu.events import MemoryEventSink
from sfu.producer import Producer
from sfu.types import PeerId
from sfu.worker import Worker
from switchboard.ids import RoomId
from tests.sfu.peers import start_publisher, start_viewer

ROOM = RoomId("cascaded")
SECRET = b"the-nodes-shared-pipe-secret"
STEP_S = 30.0


async def until(done: Callable[[], bool]) -> None:
    async with asyncio.timeout(STEP_S):
        while not done():  # noqa: ASYNC110 (polls counters the loop's datagrams move)
            await asyncio.sleep(0.05)


@pytest.fixture
async def nodes() -> AsyncIterator[tuple[Worker, Worker]]:
    made = [Worker(addresses=("127.0.0.1",), events=MemoryEventSink(), keyframe_interval_s=2.0,
                   pipe_secret=SECRET) for _ in range(2)]
    for w in made:
        await w.start()
        await w.open_room(ROOM)
    yield made[0], made[1]
    for w in made:
        await w.close()


async def test_an_edge_pulls_repairs_and_asks_for_keyframes_but_a_tap_never_does(
        nodes: tuple[Worker, Worker]) -> None:
    origin, edge = nodes
    pub = await start_publisher(origin, ROOM, "pub")
    viewers = []
    try:
        await until(lambda: len(origin.routers[ROOM].producers) == 2)
        edge_port = await edge.open_node_pipe(ROOM, "edge/1")
        origin_port = await origin.open_node_pipe(ROOM, "edge/1")
        tracks = await origin.connect_node_pipe(ROOM, "edge/1", "127.0.0.1", edge_port, True)
        await edge.connect_node_pipe(ROOM, "edge/1", "127.0.0.1", origin_port, False, tracks)
        assert len(edge.routers[ROOM].producers) == 2 and await edge.node_pipes(ROOM) == ["edge/1"]
        router = origin.routers[ROOM]
        video: Producer = next(p for p in router.producers.values() if p.kind == "video")

        def asked() -> int:
            """Keyframe requests on the publisher's video beyond the schedule's."""
            return video.keyframes.requested - router.keyframe_schedule.fired[video.producer_id]

        before = asked()
        tap = await start_viewer(edge, ROOM, "mod", hidden=True)
        viewers.append(tap)
        await tap.wait_frames(5, timeout=STEP_S)  # at a scheduled keyframe, unasked
        assert asked() == before

        fan = await start_viewer(edge, ROOM, "fan")
        viewers.append(fan)
        await fan.wait_frames(5, timeout=STEP_S)
        assert asked() > before  # its join's PLI went through the pipe to the publisher
        assert (await edge.room_stats(ROOM)).viewers == 1 and (await origin.room_stats(ROOM)).viewers == 0

        # Loss on the edge viewer's path is repaired by the edge, from its own producers' cache.
        aiortc_private.drop_incoming(fan.pc, 0.05, seed=3)
        await fan.wait_frames(fan.frames["video"] + 45, timeout=STEP_S)
        consumers = edge.routers[ROOM].transports[PeerId("fan")].consumers.values()
        await until(lambda: sum(c.retransmitted for c in consumers) > 0)

        await edge.close_node_pipe(ROOM, "edge/1")
        assert not edge.routers[ROOM].producers and await edge.node_pipes(ROOM) == []
    finally:
        for viewer in viewers:
            await viewer.close()
        await pub.close()


async def test_no_pipe_between_nodes_without_the_secret() -> None:
    worker = Worker(addresses=("127.0.0.1",), events=MemoryEventSink())
    await worker.start()
    try:
        await worker.open_room(ROOM)
        with pytest.raises(SfuError, match=r"cascade\.secret"):
            await worker.open_node_pipe(ROOM, "edge/1")
    finally:
        await worker.close()
