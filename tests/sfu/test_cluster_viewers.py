"""The counting viewers of ``bench cluster`` (``sfu.cluster_viewers``) count a real aiortc stream's RTP
on an SDK peer connection, and aiortc never sees (so never decodes) a packet of it."""

from __future__ import annotations

import asyncio
import time

from aiortc import RTCSessionDescription

from sfu.cluster_viewers import PeerCount, _media_types
from switchboard_client.peer import Peer
from tests.sfu.peers import MovingVideo, client_pc

FANOUT_PATHS = ()
"""No Worker or WorkerPool here: the fan-out setting does not reach these tests; one run (tests/conftest.py)."""


async def test_counts_frames_without_decoding() -> None:
    sender = client_pc()
    sender.addTrack(MovingVideo(160, 120))
    peer = Peer([])
    framed = asyncio.Event()
    count = PeerCount(peer, framed)  # hooked before it negotiates, as view_show(on_peer=...) does
    try:
        await sender.setLocalDescription(await sender.createOffer())
        await sender.setRemoteDescription(await _answer(peer, sender.localDescription.sdp))
        async with asyncio.timeout(30):
            await framed.wait()
            while sum(1 for f in count.frames if f[2]) < 10:  # noqa: ASYNC110 (counted at the socket: no event per frame)
                await asyncio.sleep(0.1)
        now = time.time()
        received, expected = count.totals()
        assert received > 0 and expected >= received
        stamps = [ts for _, ts, _ in count.frames]
        assert len(set(stamps)) == len(stamps), "one marker packet per frame"
        kernel = [at for at, _, by_kernel in count.frames if by_kernel]
        assert kernel == sorted(kernel) and all(now - 30 < at <= now for at in kernel), \
            "counted at the socket, a frame's arrival is the kernel's receive time (CLOCK_REALTIME)"
        assert count.remb is not None, "abs-send-time negotiated: the viewer sends REMBs as aiortc's receiver would"
        stats = await peer.pc.getStats()
        assert not any(s.type == "inbound-rtp" and s.packetsReceived for s in stats.values()), \
            "aiortc's receiver saw packets (it would decode them)"
    finally:
        await peer.close()
        await sender.close()


async def _answer(peer: Peer, offer: str) -> RTCSessionDescription:
    return RTCSessionDescription(sdp=await peer.answer(offer), type="answer")


def test_media_types_tell_video_from_rtx() -> None:
    sdp = ("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n"
           "m=video 9 UDP/TLS/RTP/SAVPF 97 98 99\r\na=rtpmap:97 VP8/90000\r\na=rtpmap:98 rtx/90000\r\n"
           "a=rtpmap:99 H264/90000\r\n")
    assert _media_types(sdp) == ({97, 99}, {98})
