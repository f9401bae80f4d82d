"""The multi-process pool: rooms placed on worker processes, driven through the MediaService protocol."""

from __future__ import annotations

import asyncio
import os
import signal
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
            await pool.open_room(room)
            pubs.append(await start_publisher(pool, room, "pub", audio=False, size=(320, 240)))
        for room in rooms:
            for _ in range(100):
                if (await pool.room_stats(room)).producers:
                    break
                await asyncio.sleep(0.05)
            viewers.append(await start_viewer(pool, room, "v"))
        for v in viewers:
            await v.wait_frames(10, timeout=20)
        assert {pool.rooms[r].home.index for r in rooms} == {0, 1}
        counters = await pool.worker_counters()
        assert all(c["forwarded"] > 0 for c in counters)
        assert len({c["pid"] for c in counters}) == 2
        with pytest.raises(NegotiationError):
            await pool.publish(rooms[0], PeerId("bad"), UserId("u"), "not sdp")
        stats = await pool.room_stats(rooms[0])
        assert stats.viewers == 1 and stats.publishers == 1
        # the aiortc viewer answers the forwarded abs-send-time with REMB: its own estimate, from its worker
        for _ in range(200):
            link = await pool.link_stats(rooms[0], PeerId("v"))
            if link["estimate_source"] == "remb":
                break
            await asyncio.sleep(0.05)
        assert link["estimate_source"] == "remb" and link["available_outgoing_bitrate"] > 0, link
        assert sum(c["bwe_viewers"] for c in await pool.worker_counters()) >= 1
    finally:
        for v in viewers:
            await v.close()
        for p in pubs:
            await p.close()
        for room in rooms:
            await pool.close_room(room)


class Recorder:
    """Plays signaling's listener: records the peers the SFU closed on its own."""

    def __init__(self) -> None:
        self.closed: list[tuple[RoomId, PeerId, str]] = []
        self.first: list[tuple[RoomId, PeerId]] = []

    async def renegotiation_needed(self, room_id: RoomId, peer_id: PeerId) -> None:
        return None

    async def peer_closed(self, room_id: RoomId, peer_id: PeerId, reason: str) -> None:
        self.closed.append((room_id, peer_id, reason))

    async def first_media(self, room_id: RoomId, peer_id: PeerId) -> None:
        self.first.append((room_id, peer_id))


async def test_a_dead_worker_closes_its_peers_and_the_pool_keeps_serving(pool: WorkerPool) -> None:
    recorder = Recorder()
    pool.set_listener(recorder)
    room = RoomId("doomed")
    await pool.open_room(room)
    pub = await start_publisher(pool, room, "pub", audio=False, size=(320, 240))
    viewer = None
    try:
        for _ in range(100):
            if (await pool.room_stats(room)).producers:
                break
            await asyncio.sleep(0.05)
        viewer = await start_viewer(pool, room, "v")
        await viewer.wait_frames(5, timeout=20)
        for _ in range(100):
            if recorder.first:
                break
            await asyncio.sleep(0.05)
        assert recorder.first == [(room, PeerId("v"))]  # from the worker process, once per subscriber
        dead = pool.rooms[room].home
        os.kill(dead.pid, signal.SIGKILL)  # our own child, by PID
        for _ in range(200):
            if len(recorder.closed) == 2 and len(pool.workers) == 2 and dead not in pool.workers:
                break
            await asyncio.sleep(0.05)
        assert sorted(recorder.closed) == [(room, PeerId("pub"), "worker-lost"), (room, PeerId("v"), "worker-lost")]
        assert room not in pool.rooms
        assert len(pool.pids()) == 2 and dead.pid not in pool.pids()
    finally:
        if viewer is not None:
            await viewer.close()
        await pub.close()
    # the node keeps serving: the same room starts again on a live worker
    await pool.open_room(room)
    pub = await start_publisher(pool, room, "pub2", audio=False, size=(320, 240))
    try:
        for _ in range(100):
            if (await pool.room_stats(room)).producers:
                break
            await asyncio.sleep(0.05)
        viewer = await start_viewer(pool, room, "v2")
        await viewer.wait_frames(5, timeout=20)
        await viewer.close()
    finally:
        await pub.close()
        await pool.close_room(room)


@pytest.fixture
def node_deps(tmp_path):  # type: ignore[no-untyped-def]
    """What ``switchboard node --workers 2`` builds (a sync fixture: it reads settings and key files)."""
    from switchboard.cli.assembly import node_deps
    from switchboard.health import Readiness
    from switchboard.keys import KeyPaths, ensure_secrets
    from switchboard.settings import load_settings

    settings = load_settings(None, {"SWITCHBOARD_DATA_DIR": str(tmp_path), "SWITCHBOARD_NODE_WORKERS": "2",
                                    "SWITCHBOARD_NODE_VIEWERS_PER_WORKER": "7"})
    ensure_secrets(KeyPaths.from_settings(settings))
    return node_deps(settings, "", Readiness(), pool=True)


async def test_the_node_runs_its_sfu_as_a_pool_of_worker_processes(node_deps) -> None:  # type: ignore[no-untyped-def]
    assert node_deps.open_media is not None
    async with node_deps.open_media(None) as media:
        assert isinstance(media, WorkerPool)
        assert len(media.pids()) == 2 and media.viewers_per_worker == 7
        pids = media.pids()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
