"""A subscriber of two publishers' audio and video (a 1:1 call's tap: audio, video, audio, video)
gets every track: the SFU's peer connections are max-bundle, so no section is left on a transport
that the client's BUNDLE answer stops (aiortc's default "balanced" policy did that to the 4th)."""

from __future__ import annotations

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection

from sfu.types import PeerId
from sfu.worker import Worker
from switchboard.ids import RoomId, UserId
from tests.sfu.peers import Viewer, answer_offer, start_publisher
from tests.sfu.test_forwarding import wait_for

ROOM = RoomId("call")


async def test_every_section_of_a_four_track_subscriber_flows(worker: Worker) -> None:
    publishers = [await start_publisher(worker, ROOM, name) for name in ("a", "b")]
    router = worker.routers[ROOM]
    await wait_for(lambda: len(router.producers) == 4, 20)
    # The client bundles everything too (browsers do; aiortc's own balanced policy has the same flaw).
    viewer = Viewer(RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)))
    try:
        offer = await worker.subscribe(ROOM, PeerId("tap"), UserId("mod"), hidden=True)
        assert offer.count("m=audio") == 2 and offer.count("m=video") == 2
        await worker.accept_answer(ROOM, PeerId("tap"), await answer_offer(viewer, offer))
        tap = router.transports[PeerId("tap")]
        assert len({id(tr.sender.transport) for tr in tap.pc.getTransceivers()}) == 1  # one transport for all
        await wait_for(lambda: len(tap.consumers) == 4 and all(c.packets > 0 for c in tap.consumers.values()), 20)
    finally:
        await viewer.close()
        for pc in publishers:
            await pc.close()
