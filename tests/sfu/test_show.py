"""Show behaviours: join mid-show, taps stay invisible, closures, NACK repair under loss."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from sfu import aiortc_private
from sfu.events import RedisEventSink
from sfu.types import PeerId
from sfu.worker import Worker
from switchboard.events import EventType, TapEvent, decode
from switchboard.ids import RoomId
from switchboard.keyspace import EVENTS_STREAM
from tests.sfu.peers import Viewer, answer_offer, start_publisher, start_viewer
from tests.sfu.test_forwarding import wait_for

ROOM = RoomId("show")


async def wait_producers(worker: Worker, n: int) -> None:
    await wait_for(lambda: ROOM in worker.routers and len(worker.routers[ROOM].producers) == n, 10)


@pytest.fixture
async def worker(redis: aioredis.Redis) -> AsyncIterator[Worker]:
    w = Worker(addresses=("127.0.0.1",), events=RedisEventSink(redis))
    await w.start()
    await w.open_room(ROOM)
    yield w
    await w.close()


async def test_viewer_joining_mid_show_gets_a_keyframe_on_join(worker: Worker) -> None:
    pub = await start_publisher(worker, ROOM, "pub", audio=False)
    await wait_producers(worker, 1)
    early = await start_viewer(worker, ROOM, "early")
    try:
        await early.wait_frames(45, timeout=20)  # the show runs; the encoder's GOP is ~100 s long
        late = await start_viewer(worker, ROOM, "late")
        try:
            # Without a PLI on join the next keyframe is ~100 s away (aiortc's GOP): decoding at all
            # within the bound shows the join asked for one. (Timing itself is the bench's job.)
            await late.wait_frames(1, timeout=10)
            assert late.first_frame_at is not None
            producer = next(iter(worker.routers[ROOM].producers.values()))
            assert producer.keyframes.sent >= 2  # one PLI per join
        finally:
            await late.close()
    finally:
        await early.close()
        await pub.close()


async def test_tap_sees_frames_and_nobody_else_sees_the_tap(worker: Worker, redis: aioredis.Redis) -> None:
    pub = await start_publisher(worker, ROOM, "pub")
    await wait_producers(worker, 2)
    viewer = await start_viewer(worker, ROOM, "viewer")
    try:
        await viewer.wait_frames(10, timeout=20)
        before = await worker.room_stats(ROOM)
        tap = await start_viewer(worker, ROOM, "mod", hidden=True)
        await tap.wait_frames(10, timeout=10)
        during = await worker.room_stats(ROOM)
        assert (during.viewers, during.publishers) == (before.viewers, before.publishers) == (1, 1)
        assert [p.consumers for p in during.producers] == [p.consumers for p in before.producers]
        frames_before_close = viewer.frames["video"]
        await worker.close_peer(ROOM, PeerId("mod"))
        await tap.close()
        await viewer.wait_frames(frames_before_close + 10, timeout=10)  # no glitch for the viewer
        events = [decode(fields) for _, fields in await redis.xrange(EVENTS_STREAM)]
        assert [e.type for e in events] == [EventType.TAP_OPENED, EventType.TAP_CLOSED]
        assert all(isinstance(e, TapEvent) and e.peer == "mod" and e.moderator == "user-mod" for e in events)
    finally:
        await viewer.close()
        await pub.close()


async def test_publisher_closing_closes_its_consumers(worker: Worker) -> None:
    pub = await start_publisher(worker, ROOM, "pub")
    await wait_producers(worker, 2)
    viewer = await start_viewer(worker, ROOM, "viewer")
    try:
        await viewer.wait_frames(5, timeout=20)
        router = worker.routers[ROOM]
        consumers = list(router.transports[PeerId("viewer")].consumers.values())
        assert len(consumers) == 2
        router.orphans.hold_s = 0  # no wait for the track to come back (sfu/orphans.py)
        await worker.close_peer(ROOM, PeerId("pub"))
        assert not any(c.closed for c in consumers) and all(router.orphans.holds(c) for c in consumers)
        router.tick()  # the hold is over: the consumers close
        assert all(c.closed for c in consumers) and len(router.orphans) == 0
        assert router.producers == {}
        stats = await worker.room_stats(ROOM)
        assert stats.publishers == 0 and stats.producers == ()
        # the viewer is asked to renegotiate and its transceivers go inactive
        offer = await worker.renegotiate(ROOM, PeerId("viewer"))
        assert offer is not None and "a=inactive" in offer
        await worker.close_peer(ROOM, PeerId("pub"))  # twice is fine
    finally:
        await viewer.close()
        await pub.close()


async def test_five_percent_loss_is_repaired_by_nack_and_rtx(worker: Worker) -> None:
    pub = await start_publisher(worker, ROOM, "pub", audio=False)
    await wait_producers(worker, 1)
    viewer = await start_viewer(worker, ROOM, "lossy")
    try:
        await viewer.wait_frames(1, timeout=20)
        dropped = aiortc_private.drop_incoming(viewer.pc, 0.05, seed=7)
        start = viewer.frames["video"]
        await viewer.wait_frames(start + 60, timeout=30)
        consumer = next(iter(worker.routers[ROOM].transports[PeerId("lossy")].consumers.values()))
        assert dropped() > 0
        assert consumer.nacked > 0
        assert consumer.retransmitted > 0
        assert consumer.rtx_payload_type is not None
        stats = await viewer.pc.getStats()
        inbound = [s for s in stats.values() if s.type == "inbound-rtp" and s.kind == "video"]
        assert inbound and inbound[0].packetsLost * 2 < dropped(), "most dropped packets were repaired"
    finally:
        await viewer.close()
        await pub.close()


async def test_subscriber_gets_sender_reports_with_counts(worker: Worker) -> None:
    pub = await start_publisher(worker, ROOM, "pub", audio=False)
    await wait_producers(worker, 1)
    viewer = await start_viewer(worker, ROOM, "v")
    try:
        await viewer.wait_frames(5, timeout=20)
        consumer = next(iter(worker.routers[ROOM].transports[PeerId("v")].consumers.values()))

        async def remote_outbound() -> list:  # type: ignore[type-arg]
            stats = await viewer.pc.getStats()
            return [s for s in stats.values() if s.type == "remote-outbound-rtp"]

        deadline = time.monotonic() + 10
        found: list = []  # type: ignore[type-arg]
        while not found and time.monotonic() < deadline:
            found = await remote_outbound()
            await asyncio.sleep(0.2)
        assert found, "viewer never received a sender report"
        assert 0 < found[0].packetsSent <= consumer.packets
    finally:
        await viewer.close()
        await pub.close()


class Renegotiator:
    """Plays signaling: relays renegotiation offers to the viewer's client."""

    def __init__(self, worker: Worker, viewers: dict[str, Viewer]) -> None:
        self.worker, self.viewers, self.asked, self.closed = worker, viewers, 0, []  # type: ignore[var-annotated]

    async def renegotiation_needed(self, room_id: RoomId, peer_id: PeerId) -> None:
        self.asked += 1
        offer = await self.worker.renegotiate(room_id, peer_id)
        if offer is not None:
            await self.worker.accept_answer(room_id, peer_id, await answer_offer(self.viewers[peer_id], offer))

    async def first_media(self, room_id: RoomId, peer_id: PeerId) -> None:
        return None

    async def peer_closed(self, room_id: RoomId, peer_id: PeerId, reason: str) -> None:
        self.closed.append((peer_id, reason))


async def test_viewer_before_publisher_gets_tracks_by_renegotiation(worker: Worker) -> None:
    viewers: dict[str, Viewer] = {}
    listener = Renegotiator(worker, viewers)
    worker.set_listener(listener)
    viewers["v"] = await start_viewer(worker, ROOM, "v")
    pub = await start_publisher(worker, ROOM, "pub")
    try:
        await viewers["v"].wait_frames(5, timeout=20)
        assert listener.asked >= 1
    finally:
        await viewers["v"].close()
        await pub.close()


async def test_loss_on_the_publishers_leg_is_repaired_by_nack_upstream(worker: Worker) -> None:
    pub = await start_publisher(worker, ROOM, "pub", audio=False)
    await wait_producers(worker, 1)
    viewer = await start_viewer(worker, ROOM, "v")
    try:
        await viewer.wait_frames(1, timeout=20)
        # 5% of what the SFU receives from the publisher is lost on the way in
        dropped = aiortc_private.drop_incoming(worker.routers[ROOM].transports[PeerId("pub")].pc, 0.05, seed=3)
        start = viewer.frames["video"]
        await viewer.wait_frames(start + 60, timeout=30)
        producer = next(iter(worker.routers[ROOM].producers.values()))
        assert dropped() > 0
        assert producer.nacks_sent > 0, "the SFU asked the publisher again"
        assert producer.rtx_received > 0 and producer.repaired > 0, "the publisher's RTX filled the gaps"
        assert producer.repaired * 2 > dropped(), "most losses upstream were repaired"
    finally:
        await viewer.close()
        await pub.close()


async def test_a_publisher_back_in_the_room_takes_over_its_viewers_consumers_in_place(worker: Worker) -> None:
    """The show's publisher leaves and publishes again (its origin node drained: it moved here; a
    reconnect): the viewers' consumers, held meanwhile (sfu/orphans.py), go on with the new producers
    in place: the same consumers, SSRCs and m-lines, no offer to answer, the numbering continued, and
    the viewer decodes the new publisher's frames (of another size: its frames, not the old ones)."""
    pub = await start_publisher(worker, ROOM, "pub")
    await wait_producers(worker, 2)
    viewer = await start_viewer(worker, ROOM, "viewer")
    again = None
    try:
        await viewer.wait_frames(5, timeout=20)
        router = worker.routers[ROOM]
        consumers = dict(router.transports[PeerId("viewer")].consumers)
        await worker.close_peer(ROOM, PeerId("pub"))
        await pub.close()
        assert all(router.orphans.holds(c) for c in consumers.values()) and router.producers == {}
        assert await worker.renegotiate(ROOM, PeerId("viewer")) is None  # nothing to tell the viewer yet
        seen = viewer.frames["video"]
        again = await start_publisher(worker, ROOM, "pub-again", size=(320, 240))
        await wait_producers(worker, 2)
        assert len(router.orphans) == 0
        assert await worker.renegotiate(ROOM, PeerId("viewer")) is None  # taken over in place: no new m-line
        assert router.transports[PeerId("viewer")].consumers == consumers  # the same consumers, same SSRCs
        new = {p.producer_id for p in router.producers.values()}
        assert {c.producer.producer_id for c in consumers.values()} == new and not any(
            c.closed for c in consumers.values())
        await viewer.wait_frames(seen + 10, timeout=20)
        assert (320, 240) in viewer.sizes  # the new publisher's frames, decoded on the old track
        assert sum(c.switches for c in consumers.values()) >= 1
    finally:
        await viewer.close()
        await pub.close()
        if again is not None:
            await again.close()
