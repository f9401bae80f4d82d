"""Pipes between worker processes: a show piped across two workers reaches viewers on both."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfu import aiortc_private
from sfu.orphans import HOLD_S
from sfu.pipe import PipeTransport
from sfu.placement import room_stats_from
from sfu.pool import WorkerPool
from sfu.producer import Codec, KeyframeRequester, Producer
from sfu.rtp import HEADER
from sfu.types import PeerId
from switchboard.ids import RoomId
from tests.sfu.peers import answer_offer, start_publisher, start_viewer
from tests.sfu.test_malformed import make_transport

ROOM = RoomId("big-show")


@pytest.fixture
async def pool() -> AsyncIterator[WorkerPool]:
    p = WorkerPool(workers=2, addresses=("127.0.0.1",), viewers_per_worker=1)
    await p.start()
    yield p
    pids = p.pids()
    await p.close()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def until(predicate, timeout: float) -> None:  # type: ignore[no-untyped-def]  # noqa: ASYNC109
    async def loop() -> None:
        while not await predicate():  # noqa: ASYNC110 (polls a worker process)
            await asyncio.sleep(0.1)
    await asyncio.wait_for(loop(), timeout)


async def test_show_piped_across_two_workers_reaches_viewers_on_both(pool: WorkerPool) -> None:
    await pool.open_room(ROOM)
    pub = await start_publisher(pool, ROOM, "pub")
    viewers = []
    try:
        async def two_tracks() -> bool:
            return len((await pool.room_stats(ROOM)).producers) == 2
        await until(two_tracks, 10)
        viewers.append(await start_viewer(pool, ROOM, "near"))
        # The show runs long enough that the encoder's next own keyframe is far away (GOP ~100 s):
        # the far viewer decoding at all means its PLI went through the pipe to the publisher.
        await viewers[0].wait_frames(45, timeout=20)
        viewers.append(await start_viewer(pool, ROOM, "far"))
        await viewers[1].wait_frames(10, timeout=20)
        await viewers[0].wait_frames(viewers[0].frames["video"] + 10, timeout=10)
        placement = pool.rooms[ROOM]
        near, far = (placement.peers[PeerId(p)][0] for p in ("near", "far"))
        assert near is placement.home and far is not near and far in placement.pipes
        assert viewers[1].sizes == {(640, 480)} and len(viewers[1].distinct) > 1, "moving frames"
        assert viewers[1].frames["audio"] > 0
        # 5% loss on the far viewer's path: repaired from the far worker's own cache (NACK -> RTX there)
        dropped = aiortc_private.drop_incoming(viewers[1].pc, 0.05, seed=11)
        await viewers[1].wait_frames(viewers[1].frames["video"] + 45, timeout=20)
        assert dropped() > 0
        # The counters are read until the far worker's answer shows (a snapshot right after the
        # frames raced the NACK round trip once, on a loaded CI machine).
        async def far_retransmitted() -> bool:
            return {c["pid"]: c for c in await pool.worker_counters()}[far.pid]["retransmitted"] > 0
        await until(far_retransmitted, 15)  # the far worker answered NACKs from its own cache
        counters = {c["pid"]: c for c in await pool.worker_counters()}
        assert counters[near.pid]["forwarded"] > 0 and counters[far.pid]["forwarded"] > 0
        stats = await pool.room_stats(ROOM)
        assert (stats.publishers, stats.viewers) == (1, 2)
        assert [p.consumers for p in stats.producers] == [2, 2]

        # The publisher leaves: the piped producers close on the far worker; its consumers are held
        # there for the track to come back (sfu/orphans.py), then close: the far viewer's m-lines go
        # inactive once the hold is over.
        await pool.close_peer(ROOM, PeerId("pub"))

        async def far_empty() -> bool:
            return room_stats_from(await far.call("room_stats", ROOM)).producers == ()
        await until(far_empty, 10)

        async def inactive() -> bool:
            offer = await pool.renegotiate(ROOM, PeerId("far"))
            if offer is not None:
                await pool.accept_answer(ROOM, PeerId("far"), await answer_offer(viewers[1], offer))
            return offer is not None and "a=inactive" in offer
        await until(inactive, HOLD_S + 10)
    finally:
        for v in viewers:
            await v.close()
        await pub.close()
        await pool.close_room(ROOM)
    assert ROOM not in pool.rooms


async def test_pipe_drops_and_counts_garbage() -> None:
    added = []
    pipe = PipeTransport("p", new_producer=lambda *a: None,  # type: ignore[arg-type,return-value]
                         on_producer=lambda t, p: added.append(p), on_producer_closed=lambda t, p: None)
    port = await pipe.open()
    pipe.connect(port, export=False)
    remote = ("127.0.0.1", port)
    for junk in (b"", b"\x00\xc1garbage", b"\x00", b"\x80\x60", b"\x40" * 20, b"\x80\xc9\x00\xff"):
        pipe.datagram_received(junk, remote)
    pipe.datagram_received(b"\x80\x60" + bytes(20), remote)  # RTP for an SSRC we do not have
    pipe.datagram_received(b"\x80\x60" + bytes(20), ("127.0.0.1", 9))  # not our peer
    assert pipe.malformed == 7 and pipe.unknown_ssrc == 1 and added == []
    pipe.close()
    pipe.close()


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=300)
@given(st.binary(max_size=120), st.booleans())
def test_garbage_on_either_end_of_a_pipe_never_raises(data: bytes, exporting: bool) -> None:
    producer = Producer("p1", PeerId("pub"), Codec("video", "video/VP8", 90000, 96), 0x1234,
                        KeyframeRequester(lambda: None, 0.5, lambda *a: None))
    pipe = PipeTransport("p", new_producer=lambda t, c, s, i: producer, on_producer=lambda t, p: None,
                         on_producer_closed=lambda t, p: None)
    pipe.remote, pipe.exporting = ("127.0.0.1", 1), exporting
    if exporting:
        pipe.export(producer)
    else:
        pipe.producers[0x1234] = producer
    for datagram in (data, b"\x00" + data, HEADER.pack(0x80, 96, 1, 2, 0x1234) + data,
                     b"\x81\xce\x00\x02" + data):
        pipe.datagram_received(datagram, pipe.remote)
    assert pipe.malformed + pipe.unknown_ssrc + producer.packets_received + producer.malformed >= 1
    pipe.close()


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=200)
@given(st.binary(max_size=120))
async def test_garbage_retransmissions_from_a_publisher_never_raise(data: bytes) -> None:
    t, producer = make_transport()
    t._rtx[0x5555] = producer
    t.on_rtp(HEADER.pack(0x80, 97, 1, 2, 0x5555) + data)
    t.on_rtp(HEADER.pack(0x80 | (data[0] & 0x3F if data else 0), 97, 1, 2, 0x5555) + data)
    assert t.malformed_rtp + producer.rtx_received + t.probes >= 2  # probes: padding only
    await t.pc.close()
