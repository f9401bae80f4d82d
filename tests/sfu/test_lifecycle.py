"""Lifecycles: rooms are opened explicitly and late calls never resurrect them; offers wait for answers
and are made again; a peer connection that dies is reported with its real reason; timers end with
their producer. Real aiortc peers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import re

import pytest
from aiortc import RTCSessionDescription

from sfu.errors import UnknownRoom
from sfu.pool import WorkerPool
from sfu.producer import Codec, KeyframeRequester, Producer
from sfu.types import IceCandidate, PeerId
from sfu.worker import Worker
from switchboard.ids import RoomId, UserId
from tests.sfu.peers import MovingVideo, Viewer, answer_offer, client_pc, start_publisher, start_viewer
from tests.sfu.test_forwarding import wait_for

ROOM = RoomId("life")


class Signaling:
    """Plays signaling's listener: relays offers to one viewer (answers wait for ``gate``), records closures."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.viewer: Viewer | None = None
        self.gate = asyncio.Event()
        self.gate.set()
        self.offers = 0
        self.closed: list[tuple[RoomId, PeerId, str]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def renegotiation_needed(self, room_id: RoomId, peer_id: PeerId) -> None:
        task = asyncio.get_running_loop().create_task(self._offer(room_id, peer_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _offer(self, room_id: RoomId, peer_id: PeerId) -> None:
        offer = await self.worker.renegotiate(room_id, peer_id)
        if offer is None or self.viewer is None:
            return
        self.offers += 1
        await self.gate.wait()
        await self.worker.accept_answer(room_id, peer_id, await answer_offer(self.viewer, offer))

    async def first_media(self, room_id: RoomId, peer_id: PeerId) -> None:
        return None

    async def peer_closed(self, room_id: RoomId, peer_id: PeerId, reason: str) -> None:
        self.closed.append((room_id, peer_id, reason))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


# --- item 17: a producer arriving while an offer waits for its answer --------------------------------


async def test_a_producer_arriving_while_an_offer_is_pending_is_offered_after_the_answer(worker: Worker) -> None:
    signaling = Signaling(worker)
    worker.set_listener(signaling)
    router = worker.routers[ROOM]
    pubs = [await start_publisher(worker, ROOM, "a", audio=False, size=(160, 120))]
    viewer = None
    try:
        await wait_for(lambda: len(router.producers) == 1, 10)
        viewer = await start_viewer(worker, ROOM, "v")
        signaling.viewer = viewer
        signaling.gate.clear()  # the viewer is slow to answer from now on
        pubs.append(await start_publisher(worker, ROOM, "b", audio=False, size=(160, 120)))
        subscriber = router.transports[PeerId("v")]
        await wait_for(lambda: subscriber.pc.signalingState == "have-local-offer", 10)
        pubs.append(await start_publisher(worker, ROOM, "c", audio=False, size=(160, 120)))
        await wait_for(lambda: len(router.producers) == 3, 10)
        await wait_for(lambda: subscriber.needs_offer, 10)  # c's renegotiation found the offer pending
        signaling.gate.set()
        await wait_for(lambda: len(subscriber.consumers) == 3, 10)
        await wait_for(lambda: all(c.packets > 0 for c in subscriber.consumers.values()), 20)
        assert len(viewer.tasks) == 3  # three remote tracks
        assert signaling.offers == 2
    finally:
        if viewer is not None:
            await viewer.close()
        for pc in pubs:
            await pc.close()
        await signaling.close()


# --- item 18: rooms are opened explicitly; late calls raise and leak nothing ------------------------


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_late_calls_after_close_room_raise_and_leak_nothing(worker: Worker) -> None:
    pub = await start_publisher(worker, ROOM, "pub", audio=False, size=(160, 120))
    viewer = await start_viewer(worker, ROOM, "v")
    await worker.close_room(ROOM)
    await viewer.close()
    await pub.close()
    late = client_pc()
    late.addTrack(MovingVideo(160, 120))
    await late.setLocalDescription(await late.createOffer())
    try:
        fds = open_fds()
        calls = [
            worker.publish(ROOM, PeerId("late"), UserId("u"), late.localDescription.sdp),
            worker.subscribe(ROOM, PeerId("late-v"), UserId("u")),
            worker.accept_answer(ROOM, PeerId("v"), "v=0"),
            worker.renegotiate(ROOM, PeerId("v")),
            worker.add_ice_candidate(ROOM, PeerId("pub"), IceCandidate("candidate:1 1 udp 1 127.0.0.1 9 typ host")),
            worker.room_stats(ROOM),
            worker.open_pipe(ROOM, "pipe1"),
            worker.publish(RoomId("never-opened"), PeerId("x"), UserId("u"), late.localDescription.sdp),
        ]
        for call in calls:
            with pytest.raises(UnknownRoom):
                await call
        await worker.close_peer(ROOM, PeerId("v"))  # closing what is gone does nothing
        await worker.close_room(ROOM)
        assert worker.routers == {}
        assert open_fds() == fds
    finally:
        await late.close()


async def test_a_room_closed_while_a_publish_negotiates_keeps_nothing(worker: Worker) -> None:
    pc = client_pc()
    pc.addTrack(MovingVideo(160, 120))
    await pc.setLocalDescription(await pc.createOffer())
    router = worker.routers[ROOM]
    try:
        publish = asyncio.ensure_future(worker.publish(ROOM, PeerId("p"), UserId("u"), pc.localDescription.sdp))
        await wait_for(lambda: PeerId("p") in router.transports, 10)
        await worker.close_room(ROOM)
        with pytest.raises(UnknownRoom):
            await publish
        assert router.transports == {} and worker.routers == {}
    finally:
        await pc.close()


async def test_the_pool_never_places_a_room_on_a_late_call() -> None:
    pool = WorkerPool(workers=1, addresses=("127.0.0.1",))
    await pool.start()
    try:
        with pytest.raises(UnknownRoom):
            await pool.subscribe(ROOM, PeerId("v"), UserId("u"))
        with pytest.raises(UnknownRoom):
            await pool.room_stats(ROOM)
        assert pool.rooms == {} and pool.workers[0].peers == 0
        await pool.open_room(ROOM)
        await pool.open_room(ROOM)  # opening an open room does nothing
        assert await pool.subscribe(ROOM, PeerId("v"), UserId("u"))
        await pool.close_room(ROOM)
        with pytest.raises(UnknownRoom):
            await pool.subscribe(ROOM, PeerId("v2"), UserId("u"))
        with pytest.raises(UnknownRoom):  # the worker process forgot it too
            await pool.workers[0].call("subscribe", ROOM, "v3", "u", False)
        assert pool.rooms == {} and pool.workers[0].peers == 0
    finally:
        await pool.close()


# --- a dead peer connection is reported, with its real reason -----------------------------------------


async def test_a_publisher_that_closes_is_reported_closed_and_viewers_lose_its_tracks(worker: Worker) -> None:
    signaling = Signaling(worker)
    worker.set_listener(signaling)
    router = worker.routers[ROOM]
    pub = await start_publisher(worker, ROOM, "pub", audio=False, size=(160, 120))
    viewer = None
    try:
        await wait_for(lambda: len(router.producers) == 1, 10)
        viewer = await start_viewer(worker, ROOM, "v")
        signaling.viewer = viewer
        await viewer.wait_frames(3, timeout=20)
        router.orphans.hold_s = 0  # the viewer's consumers are held for no time (sfu/orphans.py)
        await pub.close()  # DTLS close_notify: the node's DTLS transport ends ("closed", not "failed")
        await wait_for(lambda: signaling.closed, 10)
        assert signaling.closed == [(ROOM, PeerId("pub"), "closed")]
        assert PeerId("pub") not in router.transports and router.producers == {}
        consumers = list(router.transports[PeerId("v")].consumers.values())
        assert consumers and all(router.orphans.holds(c) for c in consumers)  # held for the track's return
        router.tick()  # no hold here (below): the viewer loses the tracks at the next tick
        assert all(c.closed for c in consumers)
    finally:
        if viewer is not None:
            await viewer.close()
        await pub.close()
        await signaling.close()


async def test_a_dtls_failure_is_reported_as_dtls_failed(worker: Worker) -> None:
    signaling = Signaling(worker)
    worker.set_listener(signaling)
    pc = client_pc()
    pc.addTrack(MovingVideo(160, 120))
    await pc.setLocalDescription(await pc.createOffer())

    def wrong(m: re.Match[str]) -> str:
        return m.group(1) + ("00" if m.group(2) != "00" else "11")

    offer = re.sub(r"(a=fingerprint:sha-256 )([0-9A-F]{2})", wrong, pc.localDescription.sdp)
    try:
        answer = await worker.publish(ROOM, PeerId("pub"), UserId("u"), offer)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        await wait_for(lambda: signaling.closed, 20)
        assert signaling.closed == [(ROOM, PeerId("pub"), "dtls-failed")]
        assert worker.routers[ROOM].transports == {}
    finally:
        await pc.close()
        await signaling.close()


# --- item 20: a producer's pending PLI ends with it -------------------------------------------------


async def test_a_closed_producer_cancels_its_pending_pli() -> None:
    loop = asyncio.get_running_loop()
    handles: list[asyncio.TimerHandle] = []
    sent: list[int] = []

    def call_later(delay: float, callback):  # type: ignore[no-untyped-def]
        handles.append(loop.call_later(delay, callback))
        return handles[-1]

    requester = KeyframeRequester(lambda: sent.append(1), 60.0, call_later)
    producer = Producer("p1", PeerId("p"), Codec("video", "video/VP8", 90000, 96), 1, requester)
    requester.request()  # sent at once
    requester.request()  # waits for the interval
    assert sent == [1] and requester.pending and len(handles) == 1
    producer.close()
    assert handles[0].cancelled() and not requester.pending
    requester.request()  # a late request on a closed producer schedules nothing
    assert len(handles) == 1 and sent == [1]
