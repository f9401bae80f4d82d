"""Media through a real coturn: publisher and viewer may use relay candidates only, the SFU in between."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcconfiguration import RTCIceTransportPolicy

from sfu.events import RedisEventSink
from sfu.types import PeerId
from sfu.worker import Worker
from switchboard.ids import RoomId, UserId
from tests.sfu.peers import MovingVideo, Viewer, answer_offer
from tests.sfu.test_forwarding import wait_for
from tests.turn.coturn import Coturn, start_coturn
from turn.coturn import CoturnSecrets
from turn.credentials import mint_credential
from turn.ice import ice_servers

SECRET = "relay-test-secret-0123456789abcdef"
ROOM = RoomId("relayed-show")


@pytest.fixture(scope="module")
def coturn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coturn]:
    server = start_coturn(tmp_path_factory.mktemp("coturn-relay"), CoturnSecrets(SECRET))
    yield server
    server.stop()


@pytest.fixture
async def worker(redis: aioredis.Redis) -> AsyncIterator[Worker]:
    w = Worker(addresses=("127.0.0.1",), events=RedisEventSink(redis))
    await w.start()
    await w.open_room(ROOM)
    yield w
    await w.close()


def relay_only_pc(coturn: Coturn, user: str) -> RTCPeerConnection:
    """A client that may only use candidates on the TURN server, as the browser would with our list."""
    servers = [
        RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
        for s in ice_servers(coturn.settings, mint_credential(SECRET, user, 300))
        if s.username  # TURN entries (the STUN one is of no use with relay-only)
    ]
    return RTCPeerConnection(RTCConfiguration(iceServers=servers, iceTransportPolicy=RTCIceTransportPolicy.RELAY))


def _candidate_types(sdp: str) -> set[str]:
    return {line.split(" typ ")[1].split()[0] for line in sdp.splitlines() if line.startswith("a=candidate:")}


async def test_relayed_publisher_and_viewer_through_the_sfu(coturn: Coturn, worker: Worker) -> None:
    publisher = relay_only_pc(coturn, "alice")
    publisher.addTrack(MovingVideo(320, 240))
    await publisher.setLocalDescription(await publisher.createOffer())
    offer = publisher.localDescription.sdp
    assert _candidate_types(offer) == {"relay"}, "the publisher must offer relay candidates only"
    answer = await worker.publish(ROOM, PeerId("pub"), UserId("alice"), offer)
    await publisher.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    viewer = Viewer(relay_only_pc(coturn, "bob"))

    @viewer.pc.on("track")
    def on_track(track) -> None:  # type: ignore[no-untyped-def]
        viewer.tasks.append(asyncio.ensure_future(viewer._pull(track)))

    try:
        await wait_for(lambda: ROOM in worker.routers and bool(worker.routers[ROOM].producers), 20)
        server_offer = await worker.subscribe(ROOM, PeerId("viewer"), UserId("bob"))
        viewer_answer = await answer_offer(viewer, server_offer)
        assert _candidate_types(viewer_answer) == {"relay"}
        await worker.accept_answer(ROOM, PeerId("viewer"), viewer_answer)
        await viewer.wait_frames(10, timeout=30)
        assert viewer.sizes == {(320, 240)}
        assert len(viewer.distinct) >= 1
        for pc in (publisher, viewer.pc):
            assert pc.iceConnectionState in ("connected", "completed")
    finally:
        await viewer.close()
        await publisher.close()
