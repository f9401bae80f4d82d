"""Joining fast: a viewer starts at a recent keyframe from the cache (no wait for the next one), the
offer asks for a keyframe before ICE/DTLS are done, and one certificate serves every peer of a worker."""

from __future__ import annotations

import pytest

from sfu import aiortc_private
from sfu import producer as producer_module
from sfu.producer import Codec, KeyframeRequester, Producer
from sfu.rtp import HEADER
from sfu.types import PeerId
from sfu.worker import Worker
from switchboard.ids import RoomId, UserId
from tests.sfu.peers import start_publisher, start_viewer
from tests.sfu.test_forwarding import wait_for

ROOM = RoomId("joins")
KEY = b"\x10\x00\x9d\x01\x2a"  # VP8: start of partition 0, P bit 0 (a key frame)
DELTA = b"\x10\x01\x00\x00\x00"  # VP8: start of a frame, P bit 1
CONT = b"\x00\x00\x00\x00\x00"  # VP8: a frame's next packet


class Recorder:
    """Stands in for a viewer's consumer: what the producer asks of it."""

    hidden = False
    relay = False

    def __init__(self) -> None:
        self.started: tuple[int, int] | None = None
        self.got: list[tuple[int, int, int, bytes]] = []

    def start(self, seq: int, ts: int) -> None:
        self.started = (seq, ts)

    def forward(self, seq: int, ts: int, marker: int, payload: bytes) -> None:
        self.got.append((seq, ts, marker, payload))


def video_producer() -> tuple[Producer, list[int]]:
    plis: list[int] = []
    requester = KeyframeRequester(lambda: plis.append(1), 0.0, lambda delay, fn: pytest.fail("no timer"))
    codec = Codec(kind="video", mime_type="video/VP8", clock_rate=90000, payload_type=96)
    return Producer("p", PeerId("pub"), codec, 1234, requester), plis


def rtp(seq: int, ts: int, payload: bytes, marker: int = 0) -> bytes:
    return HEADER.pack(0x80, marker | 96, seq, ts, 1234) + payload


def feed(producer: Producer, first: int = 65530) -> list[bytes]:
    """A delta frame, then a key frame of three packets and a delta frame of two (across the wrap)."""
    frames = [(DELTA, 0, 1), (KEY, 3000, 0), (CONT, 3000, 0), (CONT, 3000, 1), (DELTA, 6000, 0), (CONT, 6000, 1)]
    for i, (payload, ts, marker) in enumerate(frames):
        producer.on_rtp(rtp((first + i) & 0xFFFF, ts, payload, marker << 7))
    return [p for p, _, _ in frames]


def test_a_viewer_starts_at_a_recent_cached_keyframe_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(producer_module, "KEYFRAME_REPLAY_S", 3600.0)  # "recent", whatever the machine's pace
    producer, plis = video_producer()
    feed(producer)
    viewer = Recorder()
    producer.add_consumer(viewer, replay=True)  # type: ignore[arg-type]
    assert viewer.started == (65531, 3000)
    assert [(s, p) for s, _, _, p in viewer.got] == [(65531, KEY), (65532, CONT), (65533, CONT), (65534, DELTA),
                                                     (65535, CONT)]
    assert producer.active == [viewer] and not producer.waiting and plis == [] and producer.replayed == 1
    producer.on_rtp(rtp(0, 9000, DELTA))  # live from here
    assert viewer.got[-1][0] == 0


def test_without_replay_or_with_a_gap_or_an_old_keyframe_the_viewer_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(producer_module, "KEYFRAME_REPLAY_S", 3600.0)
    producer, plis = video_producer()
    feed(producer)
    waiting = Recorder()
    producer.add_consumer(waiting)  # type: ignore[arg-type]  # a pipe, a layer switch: no replay
    assert producer.waiting == [waiting] and waiting.got == [] and plis == [1]

    gap, gap_plis = video_producer()
    feed(gap)
    gap.cache[65533 & (producer_module.CACHE_SIZE - 1)] = None  # a packet since the key frame is missing
    viewer = Recorder()
    gap.add_consumer(viewer, replay=True)  # type: ignore[arg-type]
    assert gap.waiting == [viewer] and viewer.got == [] and gap_plis == [1]

    monkeypatch.setattr(producer_module, "KEYFRAME_REPLAY_S", -1.0)  # any keyframe is too old
    old, old_plis = video_producer()
    feed(old)
    late = Recorder()
    old.add_consumer(late, replay=True)  # type: ignore[arg-type]
    assert old.waiting == [late] and old_plis == [1]
    old.on_rtp(rtp(10, 12000, KEY))
    assert late.started == (10, 12000) and old.active == [late]


def test_a_tap_is_never_replayed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(producer_module, "KEYFRAME_REPLAY_S", 3600.0)
    producer, plis = video_producer()
    feed(producer)
    tap = Recorder()
    tap.hidden = True
    producer.add_consumer(tap, replay=True)  # type: ignore[arg-type]
    assert producer.waiting == [tap] and tap.got == [] and plis == []  # waits for the schedule, asks nothing


async def test_a_late_viewer_starts_from_the_cache_and_decodes(worker: Worker, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(producer_module, "KEYFRAME_REPLAY_S", 3600.0)
    pub = await start_publisher(worker, ROOM, "pub", audio=False)
    try:
        await wait_for(lambda: len(worker.routers[ROOM].producers) == 1, 10)
        early = await start_viewer(worker, ROOM, "early")
        await early.wait_frames(10, timeout=20)
        video = next(iter(worker.routers[ROOM].producers.values()))
        replayed = video.replayed
        late = await start_viewer(worker, ROOM, "late")
        try:
            await late.wait_frames(15, timeout=20)
            assert video.replayed > replayed  # started at the cached key frame
            assert len(late.distinct) >= 2 and late.sizes == {(640, 480)}
        finally:
            await late.close()
            await early.close()
    finally:
        await pub.close()


async def test_an_offer_asks_for_a_keyframe_before_the_viewer_connects(worker: Worker) -> None:
    pub = await start_publisher(worker, ROOM, "pub", audio=False)
    try:
        await wait_for(lambda: len(worker.routers[ROOM].producers) == 1, 10)
        video = next(iter(worker.routers[ROOM].producers.values()))
        requested = video.keyframes.requested
        await worker.subscribe(ROOM, PeerId("v"), UserId("user-v"), hidden=False)  # no answer: never connects
        assert video.keyframes.requested == requested + 1
        await worker.subscribe(ROOM, PeerId("tap"), UserId("user-tap"), hidden=True)
        assert video.keyframes.requested == requested + 1  # a tap's offer asks nothing
    finally:
        await pub.close()


async def test_two_peer_connections_of_a_worker_share_one_certificate(worker: Worker) -> None:
    pub = await start_publisher(worker, ROOM, "pub", audio=False)
    try:
        await wait_for(lambda: len(worker.routers[ROOM].producers) == 1, 10)
        viewer = await start_viewer(worker, ROOM, "v")
        try:
            await viewer.wait_frames(5, timeout=20)
            a, b = (t.pc for t in worker.routers[ROOM].transports.values())
            (cert_a,), (cert_b,) = aiortc_private.pc_certificates(a), aiortc_private.pc_certificates(b)
            assert cert_a is cert_b is worker.certificate.current()
            assert len(cert_a._contexts) == 1  # one SSL context built, for both DTLS handshakes
        finally:
            await viewer.close()
    finally:
        await pub.close()
