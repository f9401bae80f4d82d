"""Header extensions through the SFU with real aiortc peers: ids mapped per transport, transport-cc
numbered per viewer transport, and transport-cc feedback to a publisher that negotiated it."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

from aiortc import AudioStreamTrack, RTCSessionDescription

from sfu import aiortc_private, extensions, rtcp, twcc
from sfu.types import PeerId
from sfu.worker import Worker
from switchboard.ids import RoomId, UserId
from tests.sfu.peers import MovingVideo, Viewer, answer_offer, client_pc

ROOM = RoomId("extended")

PUBLISHER_IDS = {extensions.MID: 9, extensions.ABS_SEND_TIME: 12, extensions.AUDIO_LEVEL: 11,
                 extensions.TRANSPORT_CC: 13}
"""Ids the test publisher uses: none of them is one the SFU offers viewers (they start at 1)."""


def renumber(sdp: str, ids: dict[str, int], add_twcc: bool) -> str:
    """The client's SDP with its extmap ids changed to ``ids`` (and transport-cc added if asked)."""
    session, sections = extensions.split_sdp(sdp)
    for s in sections:
        have = s.extmaps()
        s.lines = [line for line in s.lines if not line.startswith("a=extmap:")]
        uris = list(have) + ([extensions.TRANSPORT_CC] if add_twcc else [])
        s.add_extmaps(sorted((ids[u], u) for u in uris))
        if add_twcc:
            for pt in s.payload_types():
                s.add_feedback(pt, "transport-cc")
    return extensions.join_sdp(session, sections)


def keep_transport_cc(answer: str, offer: str) -> str:
    """A viewer answer that keeps transport-cc (as Chrome's does; aiortc drops what it does not know)."""
    return extensions.complete_answer(answer, offer)


async def wait_for(predicate: Callable[[], bool], timeout: float) -> None:  # noqa: ASYNC109
    async def loop() -> None:
        while not predicate():  # noqa: ASYNC110 (polls state owned by aiortc callbacks)
            await asyncio.sleep(0.05)
    await asyncio.wait_for(loop(), timeout)


async def publish(worker: Worker, add_twcc: bool):  # type: ignore[no-untyped-def]
    pc = client_pc()
    pc.addTrack(MovingVideo(320, 240))
    pc.addTrack(AudioStreamTrack())
    await pc.setLocalDescription(await pc.createOffer())
    offer = renumber(pc.localDescription.sdp, PUBLISHER_IDS, add_twcc)  # aiortc then sends with the answer's ids
    answer = await worker.publish(ROOM, PeerId("pub"), UserId("user-pub"), offer)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return pc, answer


async def test_extension_ids_are_mapped_from_the_publishers_to_each_viewers(worker: Worker) -> None:
    pub, answer = await publish(worker, add_twcc=False)
    answered = extensions.section_maps(answer)
    assert all(ids[extensions.MID] == 9 for ids in answered.values()), answered
    viewer = Viewer(client_pc())
    got: list[bytes] = []
    try:
        await wait_for(lambda: len(worker.routers[ROOM].producers) == 2, 10)
        offer = await worker.subscribe(ROOM, PeerId("v"), UserId("user-v"), hidden=False)
        offered = extensions.section_maps(offer)
        await viewer.pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        await viewer.pc.setLocalDescription(await viewer.pc.createAnswer())
        view_answer = keep_transport_cc(viewer.pc.localDescription.sdp, offer)
        aiortc_private.record_incoming_rtp(viewer.pc, got.append)
        await worker.accept_answer(ROOM, PeerId("v"), view_answer)
        await wait_for(lambda: len(got) > 60, 15)
        viewer_ids = extensions.section_maps(view_answer)
        kinds = {mid: kind for mid, kind in ((s.mid, s.kind) for s in extensions.split_sdp(offer)[1])}
        seen_kinds = set()
        twcc_numbers = []
        for packet in got:
            elems = extensions.elements(packet)
            any_ids = next(iter(viewer_ids.values()))
            if not any(elems.get(ids[extensions.MID]) == m.encode() for m, ids in viewer_ids.items()):
                assert set(elems) == {any_ids[extensions.TRANSPORT_CC]}  # a retransmission: numbered only
                twcc_numbers.append(int.from_bytes(elems[any_ids[extensions.TRANSPORT_CC]], "big"))
                continue
            mid = next(m for m, ids in viewer_ids.items() if elems.get(ids[extensions.MID]) == m.encode())
            ids = viewer_ids[mid]
            assert set(elems) <= set(ids.values()), (elems, ids)  # nothing at an id the viewer did not agree
            assert not set(elems) & {9, 11, 12, 13}  # no publisher id leaks through
            assert len(elems[ids[extensions.ABS_SEND_TIME]]) == 3
            twcc_numbers.append(int.from_bytes(elems[ids[extensions.TRANSPORT_CC]], "big"))
            if kinds[mid] == "audio":
                assert len(elems[ids[extensions.AUDIO_LEVEL]]) == 1  # the publisher's value, at the viewer's id
            seen_kinds.add(kinds[mid])
        assert seen_kinds == {"audio", "video"}
        assert all(ids == offered[mid] for mid, ids in viewer_ids.items())
        # one sequence for the whole viewer transport (audio and video interleaved), gaps only by reordering
        ordered = sorted(set(twcc_numbers))
        assert len(ordered) == len(twcc_numbers) and ordered[-1] - ordered[0] + 1 == len(ordered)
    finally:
        await viewer.close()
        await pub.close()


async def test_a_publisher_with_transport_cc_gets_feedback_for_what_it_sent(worker: Worker) -> None:
    pub, answer = await publish(worker, add_twcc=True)
    assert all(ids.get(extensions.TRANSPORT_CC) == 13 for ids in extensions.section_maps(answer).values())
    assert "transport-cc" in answer
    written = aiortc_private.stamp_transport_cc(pub, 13)
    feedback: list[twcc.Feedback] = []
    for dtls in {id(t.sender.transport): t.sender.transport for t in pub.getTransceivers()}.values():
        original = dtls._handle_rtcp_data

        async def watch(data: bytes, original=original) -> None:  # type: ignore[no-untyped-def]
            for pt, fmt, body in rtcp.split(data):
                if pt == twcc.RTPFB and fmt == twcc.FMT_TWCC:
                    feedback.append(twcc.parse(body))
            await original(data)

        dtls._handle_rtcp_data = watch
    viewer = None
    try:
        await wait_for(lambda: len(worker.routers[ROOM].producers) == 2, 10)
        offer = await worker.subscribe(ROOM, PeerId("v"), UserId("user-v"), hidden=False)
        viewer = Viewer(client_pc())
        await worker.accept_answer(ROOM, PeerId("v"), await answer_offer(viewer, offer))
        await wait_for(lambda: len(feedback) >= 10, 15)
        acked = {seq: at for fb in feedback for seq, at in fb.arrivals}
        received = [s for s, at in acked.items() if at is not None]
        assert set(acked) <= set(written)
        assert len(received) >= 0.95 * len(acked) > 0  # loopback: (nearly) everything arrived
        counts = [fb.count for fb in feedback]
        assert counts == [c & 0xFF for c in range(counts[0], counts[0] + len(counts))]
        # consecutive feedbacks pick up where the previous one ended
        for a, b in itertools.pairwise(feedback):
            assert b.base_seq == (a.base_seq + len(a.arrivals)) & 0xFFFF
    finally:
        if viewer is not None:
            await viewer.close()
        await pub.close()


async def test_each_viewers_feedback_feeds_its_own_estimate(worker: Worker) -> None:
    """A Chrome-like viewer (transport-cc kept, feedback sent) gets a transport-cc estimate; an aiortc
    viewer (REMB from abs-send-time, which is now forwarded) a REMB one; each sees only its own."""
    pub, _ = await publish(worker, add_twcc=False)
    chromy = Viewer(client_pc())
    plain = None
    arrivals = twcc.Arrivals()
    sent: list[int] = []

    def on_rtp(packet: bytes) -> None:
        ids = next(iter(extensions.section_maps(view_answer).values()))
        value = extensions.elements(packet).get(ids[extensions.TRANSPORT_CC])
        if value is not None:
            arrivals.record(int.from_bytes(value, "big"), int(asyncio.get_running_loop().time() * 1e6))

    async def send_feedback() -> None:
        dtls = chromy.pc.getTransceivers()[0].receiver.transport
        while True:
            await asyncio.sleep(0.1)
            packet = arrivals.feedback(0x4321, 0)
            if packet is not None:
                sent.append(len(packet))
                await dtls._send_rtp(packet)

    feeder = None
    try:
        await wait_for(lambda: len(worker.routers[ROOM].producers) == 2, 10)
        offer = await worker.subscribe(ROOM, PeerId("chromy"), UserId("user-chromy"), hidden=False)
        await chromy.pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        await chromy.pc.setLocalDescription(await chromy.pc.createAnswer())
        view_answer = keep_transport_cc(chromy.pc.localDescription.sdp, offer)
        aiortc_private.record_incoming_rtp(chromy.pc, on_rtp)
        await worker.accept_answer(ROOM, PeerId("chromy"), view_answer)
        feeder = asyncio.ensure_future(send_feedback())
        plain = Viewer(client_pc())

        @plain.pc.on("track")
        def on_track(track) -> None:  # type: ignore[no-untyped-def]
            plain.tasks.append(asyncio.ensure_future(plain._pull(track)))

        offer2 = await worker.subscribe(ROOM, PeerId("plain"), UserId("user-plain"), hidden=False)
        await worker.accept_answer(ROOM, PeerId("plain"), await answer_offer(plain, offer2))
        router = worker.routers[ROOM]
        await wait_for(lambda: router.transports[PeerId("chromy")].link.source == "transport-cc"
                       and router.transports[PeerId("plain")].link.source == "remb", 20)
        await asyncio.sleep(1.0)
        mine = await worker.link_stats(ROOM, PeerId("chromy"))
        theirs = await worker.link_stats(ROOM, PeerId("plain"))
        assert mine["estimate_source"] == "transport-cc" and theirs["estimate_source"] == "remb"
        assert mine["available_outgoing_bitrate"] > 0 and theirs["available_outgoing_bitrate"] > 0
        assert router.transports[PeerId("chromy")].link.estimator.received  # feedback resolved to our packets
        assert router.transports[PeerId("plain")].link.departures.seq == 0  # no transport-cc numbers for it
    finally:
        if feeder is not None:
            feeder.cancel()
        for v in (chromy, plain):
            if v is not None:
                await v.close()
        await pub.close()
