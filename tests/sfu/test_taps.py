"""A hidden tap causes no packet toward any participant: the RTCP each one receives is the same, by type
and count, over equal windows with and without a tap (real aiortc peers through the real SFU worker).

Every publisher's video is asked for a keyframe on the router's fixed schedule; a tap starts at the
next scheduled keyframe without asking, and its own RTCP (PLI, FIR, NACK, RR, REMB) never goes upstream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from sfu import rtcp
from sfu.events import MemoryEventSink
from sfu.keyframes import KEYFRAME_INTERVAL_S, KeyframeSchedule
from sfu.pool import WorkerPool
from sfu.producer import Producer
from sfu.router import Router
from sfu.types import PeerId
from sfu.worker import Worker
from switchboard.events import EventType
from switchboard.ids import RoomId
from switchboard.settings import SettingsError, load_settings
from tests.sfu.peers import Viewer, start_publisher, start_viewer
from tests.sfu.rtcp_watch import RtcpWatch, Ticks, window
from tests.sfu.test_forwarding import wait_for

ROOM = RoomId("show-tapped")
INTERVAL = 2.0
WINDOW_TICKS = 8


@pytest.fixture
async def worker() -> AsyncIterator[Worker]:
    events = MemoryEventSink()
    w = Worker(addresses=("127.0.0.1",), events=events, keyframe_interval_s=INTERVAL)
    await w.start()
    await w.open_room(ROOM)
    yield w
    await w.close()


def video_of(router: Router) -> Producer:
    return next(p for p in router.producers.values() if p.kind == "video")


async def send_from_tap(tap: Viewer, router: Router, peer: str) -> None:
    """What a moderator's client could send on its own: PLI, FIR and NACKs for every track it gets."""
    dtls = tap.pc.getTransceivers()[0].receiver.transport
    for ssrc, consumer in router.transports[PeerId(peer)].consumers.items():
        recent = (consumer.producer.max_seq + consumer.seq_off) & 0xFFFF
        await dtls._send_rtp(rtcp.build_pli(0x1234, ssrc))
        await dtls._send_rtp(rtcp.build_nack(0x1234, ssrc, [recent, (recent - 3) & 0xFFFF, (recent + 999) & 0xFFFF]))
        fir = bytes([0x80 | rtcp.FMT_FIR, rtcp.PSFB, 0, 4]) + (0x1234).to_bytes(4, "big") + bytes(4) + \
            ssrc.to_bytes(4, "big") + bytes([1, 0, 0, 0])
        await dtls._send_rtp(fir)


async def test_a_tap_changes_no_rtcp_a_publisher_or_viewer_receives(worker: Worker) -> None:
    pub = await start_publisher(worker, ROOM, "pub")
    viewers: list[Viewer] = []
    try:
        await wait_for(lambda: ROOM in worker.routers and len(worker.routers[ROOM].producers) == 2, 10)
        router = worker.routers[ROOM]
        viewers.append(await start_viewer(worker, ROOM, "viewer"))
        await viewers[0].wait_frames(10, timeout=20)
        video = video_of(router)
        schedule = router.keyframe_schedule
        publisher, viewer = RtcpWatch(pub), RtcpWatch(viewers[0].pc)

        def state() -> tuple[dict[str, int], dict[str, int], int, int]:
            return (publisher.snapshot(), viewer.snapshot(), schedule.fired[video.producer_id], video.nacks_sent)

        ticks = Ticks(router, state)
        first = ticks.n + 2
        start = await ticks.probe_at(first)
        middle = await ticks.probe_at(first + WINDOW_TICKS)
        tap = await start_viewer(worker, ROOM, "mod", hidden=True)
        viewers.append(tap)
        await tap.wait_frames(3, timeout=WINDOW_TICKS - 2)  # it started, at a scheduled keyframe
        await send_from_tap(tap, router, "mod")
        assert router.transports[PeerId("mod")].consumers  # (its NACKs were answered from the cache)
        end = await ticks.probe_at(first + 2 * WINDOW_TICKS)

        quiet = [window(start[i], middle[i]) for i in (0, 1)]  # type: ignore[arg-type]
        tapped = [window(middle[i], end[i]) for i in (0, 1)]  # type: ignore[arg-type]
        scheduled = (middle[2] - start[2], end[2] - middle[2])
        nacked = (middle[3] - start[3], end[3] - middle[3])
        # The publisher: PLIs are exactly the scheduled ones, NACKs exactly those for its own losses.
        assert quiet[0].get("PLI", 0) == scheduled[0] and tapped[0].get("PLI", 0) == scheduled[1], (quiet, tapped)
        assert quiet[0].get("NACK", 0) == nacked[0] and tapped[0].get("NACK", 0) == nacked[1], (quiet, tapped)
        assert abs(scheduled[0] - scheduled[1]) <= 1  # the schedule's granularity
        # Everything else, for the publisher and the viewer alike, is the same count of each type.
        for before, during in zip(quiet, tapped, strict=True):
            assert {k: v for k, v in before.items() if k not in ("PLI", "NACK")} == \
                {k: v for k, v in during.items() if k not in ("PLI", "NACK")}, (quiet, tapped)
        assert quiet[0]["RR"] == 2 * WINDOW_TICKS and quiet[1]["SR"] == 2 * WINDOW_TICKS  # audio + video
        assert tap.frames["video"] > 0
        await worker.close_peer(ROOM, PeerId("mod"))
    finally:
        for v in viewers:
            await v.close()
        await pub.close()
    events: MemoryEventSink = worker.events  # type: ignore[assignment]
    assert [e.type for e in events.events] == [EventType.TAP_OPENED, EventType.TAP_CLOSED]
    assert events.events[0].publishers == ("user-pub",)


async def test_a_viewer_join_still_asks_for_a_keyframe_a_tap_does_not(worker: Worker) -> None:
    """The difference between a viewer and a tap at the producer: only the viewer makes a request."""
    pub = await start_publisher(worker, ROOM, "pub")
    viewers: list[Viewer] = []
    try:
        await wait_for(lambda: ROOM in worker.routers and len(worker.routers[ROOM].producers) == 2, 10)
        video = video_of(worker.routers[ROOM])
        viewers.append(await start_viewer(worker, ROOM, "mod", hidden=True))
        await viewers[0].wait_frames(3, timeout=20)
        assert video.keyframes.requested == worker.routers[ROOM].keyframe_schedule.fired[video.producer_id]
        viewers.append(await start_viewer(worker, ROOM, "viewer"))
        await viewers[1].wait_frames(3, timeout=20)
        assert video.keyframes.requested > worker.routers[ROOM].keyframe_schedule.fired[video.producer_id]
    finally:
        for v in viewers:
            await v.close()
        await pub.close()


async def test_a_tap_in_a_pool_never_opens_a_pipe() -> None:
    """Over the limit of viewers per worker, a viewer opens a pipe (and its export asks the publisher
    for a keyframe); a tap goes to a worker the room is already on, and does not count."""
    pool = WorkerPool(workers=2, addresses=("127.0.0.1",), viewers_per_worker=1, keyframe_interval_s=INTERVAL)
    await pool.start()
    await pool.open_room(ROOM)
    viewers: list[Viewer] = []
    pub = await start_publisher(pool, ROOM, "pub", audio=False, size=(320, 240))
    try:
        async with asyncio.timeout(20):
            while not (await pool.room_stats(ROOM)).producers:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        viewers.append(await start_viewer(pool, ROOM, "v1"))
        viewers.append(await start_viewer(pool, ROOM, "mod", hidden=True))
        assert not pool.rooms[ROOM].pipes
        await viewers[1].wait_frames(3, timeout=20)  # the schedule's keyframes, in the worker process
        assert (await pool.room_stats(ROOM)).viewers == 1
        viewers.append(await start_viewer(pool, ROOM, "v2"))
        assert len(pool.rooms[ROOM].pipes) == 1
    finally:
        for v in viewers:
            await v.close()
        await pub.close()
        await pool.close()


class FakeRequester:
    def __init__(self) -> None:
        self.n = 0

    def request(self) -> None:
        self.n += 1


class FakeProducer:
    def __init__(self, producer_id: str, video: bool = True) -> None:
        self.producer_id = producer_id
        self.is_keyframe = (lambda payload: True) if video else None
        self.closed = False
        self.keyframes = FakeRequester()


def test_schedule_asks_every_interval_on_a_fixed_grid() -> None:
    schedule = KeyframeSchedule(4.0)
    video, audio = FakeProducer("v"), FakeProducer("a", video=False)
    schedule.add(video, 100.0)  # type: ignore[arg-type]
    schedule.add(audio, 100.0)  # type: ignore[arg-type]
    for now in (101.0, 103.9, 104.2, 105.0, 108.1, 112.0, 130.0, 133.0, 134.1):
        schedule.tick(now)
    # 104.2 and 108.1 and 112.0 on the grid; after the stall, 130.0 then 134.1 (a period later).
    assert video.keyframes.n == schedule.fired["v"] == 5
    assert audio.keyframes.n == 0 and "a" not in schedule.fired
    video.closed = True
    schedule.tick(200.0)
    assert video.keyframes.n == 5


def test_the_interval_is_a_setting() -> None:
    assert load_settings(environ={"SWITCHBOARD_SFU_KEYFRAME_INTERVAL_S": "2.5"}).sfu.keyframe_interval_s == 2.5
    assert load_settings(environ={}).sfu.keyframe_interval_s == KEYFRAME_INTERVAL_S == 4.0
    with pytest.raises(SettingsError, match="keyframe_interval_s"):
        load_settings(environ={"SWITCHBOARD_SFU_KEYFRAME_INTERVAL_S": "0"})
