"""H.264 end to end: an aiortc publisher sending H.264 -> SFU (no decoding) -> a viewer that decodes it."""

from __future__ import annotations

from aiortc import RTCRtpSender, RTCSessionDescription

from sfu.types import PeerId
from sfu.worker import Worker
from switchboard.ids import RoomId, UserId
from tests.sfu.peers import MovingVideo, client_pc, start_viewer
from tests.sfu.test_forwarding import wait_for

ROOM = RoomId("h264")


async def test_h264_show_is_forwarded_and_decoded(worker: Worker) -> None:
    pub = client_pc()
    transceiver = pub.addTransceiver(MovingVideo(), direction="sendonly")
    h264 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/H264"]
    transceiver.setCodecPreferences(h264)
    await pub.setLocalDescription(await pub.createOffer())
    answer = await worker.publish(ROOM, PeerId("pub"), UserId("u-pub"), pub.localDescription.sdp)
    await pub.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    viewers = []
    try:
        await wait_for(lambda: ROOM in worker.routers and len(worker.routers[ROOM].producers) == 1, 10)
        producer = next(iter(worker.routers[ROOM].producers.values()))
        assert producer.codec.mime_type.lower() == "video/h264"
        for name in ("v1", "v2"):
            viewers.append(await start_viewer(worker, ROOM, name))
        for v in viewers:
            await v.wait_frames(15, timeout=20)
            assert v.sizes == {(640, 480)} and len(v.distinct) > 1, "moving H.264 frames decoded"
        offer = viewers[0].pc.remoteDescription.sdp
        assert "H264/90000" in offer and "VP8/90000" not in offer, "the viewer was offered the publisher's codec"
        consumer = next(iter(worker.routers[ROOM].transports[PeerId("v1")].consumers.values()))
        assert consumer.producer is producer and consumer.packets > 0
    finally:
        for v in viewers:
            await v.close()
        await pub.close()
