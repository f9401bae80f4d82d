"""One exception must never kill media: big packets, a fault in our receive path, a broken room tick.

Real aiortc peers on 127.0.0.1 (the publisher is made to packetize like GStreamer at MTU 1400).
"""

from __future__ import annotations

import struct

import aiortc.codecs.vpx
import numpy as np
import pytest
from av import VideoFrame

from sfu import aiortc_private, rtcp
from sfu.events import MemoryEventSink
from sfu.producer import Producer
from sfu.router import Router
from sfu.transport import Transport
from sfu.types import PeerId
from sfu.worker import Worker
from switchboard.ids import RoomId, UserId
from tests.sfu.peers import MovingVideo, client_pc, start_publisher, start_viewer
from tests.sfu.test_forwarding import wait_for

ROOM = RoomId("hot")


class NoisyVideo(MovingVideo):
    """Noise: every frame is big, so the encoder fills whole packets (PACKET_MAX bytes of payload)."""

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        img = np.random.default_rng(self.n).integers(0, 255, (self.height, self.width, 3), dtype=np.uint8)
        self.n += 1
        frame = VideoFrame.from_ndarray(img, format="bgr24")
        frame.pts, frame.time_base = pts, time_base
        return frame


def publisher_transport(worker: Worker) -> Transport:
    return worker.routers[ROOM].transports[PeerId("pub")]


def video_producer(worker: Worker) -> Producer:
    return next(p for p in worker.routers[ROOM].producers.values() if p.kind == "video")


@pytest.mark.parametrize("packet_max", [1400, 4000])
async def test_big_packets_from_a_publisher_keep_flowing_to_viewers(
        worker: Worker, monkeypatch: pytest.MonkeyPatch, packet_max: int) -> None:
    """1400: GStreamer's default MTU (pylibsrtp's protect refused RTP above 1356 bytes, which killed the
    publisher's DTLS task). 4000: above any default buffer, as loopback carries it (the receiving
    session's unprotect refused datagrams above 1500 bytes the same way)."""
    pub = client_pc()
    pub.addTrack(NoisyVideo(320, 240))
    await pub.setLocalDescription(await pub.createOffer())
    answer = await worker.publish(ROOM, PeerId("pub"), UserId("u-pub"), pub.localDescription.sdp)
    await pub.setRemoteDescription(aiortc.RTCSessionDescription(sdp=answer, type="answer"))
    viewers = []
    try:
        await wait_for(lambda: len(worker.routers[ROOM].producers) == 1, 10)
        viewers.append(await start_viewer(worker, ROOM, "v1"))
        await viewers[0].wait_frames(5, timeout=20)
        # The test's own aiortc clients must take the big packets too: the publisher's SRTP buffer, and
        # the connected viewer's receiving session (done for the SFU's peers by sfu.aiortc_private).
        aiortc_private.grow_srtp_buffer(pub.getTransceivers()[0].sender.transport._tx_srtp, packet_max + 100)
        aiortc_private.guard_unprotect(viewers[0].pc.getTransceivers()[0].receiver.transport)
        monkeypatch.setattr(aiortc.codecs.vpx, "PACKET_MAX", packet_max)  # the publisher packetizes bigger
        producer = video_producer(worker)
        producer.keyframes.request()  # a keyframe: full packets
        await wait_for(lambda: any(e is not None and len(e[3]) > packet_max - 100 for e in producer.cache), 10)
        before = viewers[0].frames["video"]
        if packet_max <= 1500:  # a viewer joining now (its PLI: a keyframe of full packets for all)
            viewers.append(await start_viewer(worker, ROOM, "v2"))
            await viewers[1].wait_frames(10, timeout=20)
        await viewers[0].wait_frames(before + 10, timeout=20)
        t = publisher_transport(worker)
        assert t.pc.connectionState == "connected" and not t.closed
        assert t.faults.total == 0
        viewer_t = worker.routers[ROOM].transports[PeerId("v1")]
        consumer_wire = viewer_t.wire
        assert consumer_wire is not None and consumer_wire.dropped == 0
        if viewer_t.native is None:  # the Python fan-out: pylibsrtp's buffer grew for them
            assert aiortc_private.srtp_buffer_size(consumer_wire.dtls._tx_srtp) > 1500
        else:  # the native one took them as they came
            assert viewer_t.native.dropped == 0 and viewer_t.native.send_errors == 0
        if packet_max > 1500:
            assert t.wire is not None and aiortc_private.srtp_buffer_size(t.wire.dtls._rx_srtp) > 1500
    finally:
        for v in viewers:
            await v.close()
        await pub.close()


async def test_an_exception_in_our_receive_path_drops_the_packet_not_the_peer(
        worker: Worker, monkeypatch: pytest.MonkeyPatch) -> None:
    pub = await start_publisher(worker, ROOM, "pub", audio=False, size=(320, 240))
    viewer = None
    try:
        await wait_for(lambda: len(worker.routers[ROOM].producers) == 1, 10)
        viewer = await start_viewer(worker, ROOM, "v")
        await viewer.wait_frames(5, timeout=20)
        producer = video_producer(worker)
        original = producer.on_rtp
        failures = [3]

        def on_rtp(data: bytes) -> None:
            if failures[0]:
                failures[0] -= 1
                raise RuntimeError("a bug on the hot path")
            original(data)

        monkeypatch.setattr(producer, "on_rtp", on_rtp)
        await wait_for(lambda: failures[0] == 0, 10)
        before = viewer.frames["video"]
        await viewer.wait_frames(before + 10, timeout=20)
        t = publisher_transport(worker)
        assert t.faults.counts == {"RuntimeError": 3}
        assert t.pc.connectionState == "connected"
    finally:
        if viewer is not None:
            await viewer.close()
        await pub.close()


def test_srtp_sessions_take_any_datagram_size() -> None:
    import pylibsrtp

    key = bytes(range(30))
    policy = pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    policy.allow_repeat_tx = True  # as aiortc sets it (a packet is protected again after a refusal)
    tx = pylibsrtp.Session(policy)
    rx = pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))

    def rtp(size: int) -> bytes:
        return struct.pack("!BBHII", 0x80, 96, size & 0xFFFF, 0, 0x1234) + bytes(size - 12)

    with pytest.raises(ValueError, match="too long"):  # pylibsrtp as it comes: 1500 - 144 bytes at most
        tx.protect(rtp(1357))
    for size in (1356, 1357, 1400, 9000, 65000):
        assert aiortc_private.grow_srtp_buffer(tx, size)
        protected = tx.protect(rtp(size))
        assert aiortc_private.grow_srtp_buffer(rx, len(protected))
        assert rx.unprotect(protected) == rtp(size)
    assert not aiortc_private.grow_srtp_buffer(tx, 65536)  # no datagram is that big: dropped, counted
    assert aiortc_private.srtp_buffer_size(tx) <= 1 << 17


# --- item 16: the ticker ---------------------------------------------------------------------------


def test_sender_report_ntp_seconds_wrap() -> None:
    for seconds, field in ((0xFFFFFFFF, 0xFFFFFFFF), (0x1_0000_0000, 0), (0x1_0000_0005, 5)):
        sr = rtcp.build_sr(0x42, (seconds << 32) | 0x8000_0000, 0x1_2345_6789, 1 << 33, 7)
        (pt, _, body), = rtcp.split(sr)
        ssrc, ntp, rtp_ts = rtcp.sr_info(body)
        assert (pt, ssrc, ntp >> 32, ntp & 0xFFFFFFFF, rtp_ts) == (rtcp.SR, 0x42, field, 0x8000_0000, 0x2345_6789)


async def test_a_room_whose_tick_raises_does_not_stop_the_others() -> None:
    w = Worker(addresses=("127.0.0.1",), events=MemoryEventSink(), tick_s=0.05)
    await w.start()
    try:
        await w.open_room(RoomId("broken"))
        await w.open_room(RoomId("fine"))
        ticks = [0]

        def broken() -> None:
            raise struct.error("'I' format requires 0 <= number <= 4294967295")

        def fine() -> None:
            ticks[0] += 1

        w.routers[RoomId("broken")].tick = broken  # type: ignore[method-assign]
        w.routers[RoomId("fine")].tick = fine  # type: ignore[method-assign]
        await wait_for(lambda: ticks[0] >= 3, 10)
        assert w.tick_faults.counts.get("error", 0) >= 3
        assert w._ticker is not None and not w._ticker.done()
    finally:
        await w.close()


async def test_a_tick_goes_over_the_peers_in_chunks_and_a_datagram_gets_in_between(worker: Worker) -> None:
    """A room's tick ticks its peers :data:`sfu.router_tick.TICK_CHUNK` at a time, one loop turn each:
    a datagram already waiting is handled before the last chunk, not after every peer (one callback
    for the whole room held an edge's fan-out ~5 ms once a second). Each peer is ticked once."""
    import asyncio
    import socket

    from sfu.router_tick import TICK_CHUNK

    count = 2 * TICK_CHUNK + 3
    router: Router = worker.routers[ROOM]
    for i in range(count):  # the router's own subscribe: the worker's join admission would hold them
        await router.subscribe(PeerId(f"v{i}"), UserId(f"u{i}"), hidden=False)
    order: list[PeerId] = []
    for peer_id, t in router.transports.items():
        def ticked(original=t.tick, peer_id=peer_id) -> None:  # type: ignore[no-untyped-def]
            order.append(peer_id)
            original()
        t.tick = ticked  # type: ignore[method-assign]
    loop = asyncio.get_running_loop()
    seen_at: list[int] = []

    class Seen(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            seen_at.append(len(order))

    receiving, _ = await loop.create_datagram_endpoint(Seen, local_addr=("127.0.0.1", 0))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sender.sendto(b"media", receiving.get_extra_info("sockname"))  # waiting in the socket before the tick
        router.tick()
        assert len(order) == TICK_CHUNK
        await wait_for(lambda: len(order) == count and seen_at, 10)
        assert seen_at[0] < count
        assert sorted(order) == sorted(router.transports)
    finally:
        sender.close()
        receiving.close()


async def test_rtcp_keeps_flowing_next_to_a_publisher_whose_ntp_clock_wraps(worker: Worker) -> None:
    """A publisher's SR near the NTP wrap made build_sr raise struct.error in the ticker; with the
    field masked the room's viewers keep getting sender reports and the other room's RTCP goes on."""
    pub = await start_publisher(worker, ROOM, "pub", audio=False, size=(320, 240))
    viewer = None
    try:
        await wait_for(lambda: len(worker.routers[ROOM].producers) == 1, 10)
        viewer = await start_viewer(worker, ROOM, "v")
        await viewer.wait_frames(3, timeout=20)
        producer = video_producer(worker)
        producer.on_sender_report((0xFFFFFFFF << 32) | 0xFFFF0000, 1234)
        router: Router = worker.routers[ROOM]
        consumer = next(iter(router.transports[PeerId("v")].consumers.values()))
        assert consumer.sender_report() is not None
        ticks = worker.ticks
        await wait_for(lambda: worker.ticks >= ticks + 2, 10)
        assert worker.tick_faults.total == 0 and router.faults.total == 0
        assert worker._ticker is not None and not worker._ticker.done()
    finally:
        if viewer is not None:
            await viewer.close()
        await pub.close()
