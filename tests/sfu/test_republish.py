"""A publisher's page that reloads publishes from a new peer connection on the same peer: the router
replaces the transport (aiortc cannot ICE-restart) and viewers get the new producer; a renegotiation
from the same connection keeps it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from aiortc import RTCSessionDescription

from sfu.events import RedisEventSink
from sfu.negotiation import ice_ufrag
from sfu.types import PeerId
from sfu.worker import Worker
from switchboard.ids import RoomId, UserId
from tests.sfu.peers import start_publisher, start_viewer
from tests.sfu.test_forwarding import wait_for

ROOM = RoomId("reload")


@pytest.fixture
async def worker(redis: aioredis.Redis) -> AsyncIterator[Worker]:
    w = Worker(addresses=("127.0.0.1",), events=RedisEventSink(redis))
    await w.start()
    await w.open_room(ROOM)
    yield w
    await w.close()


def test_ice_ufrag_reads_the_first_one() -> None:
    assert ice_ufrag("v=0\r\na=ice-ufrag:abcd\r\na=ice-pwd:x\r\na=ice-ufrag:efgh\r\n") == "abcd"
    assert ice_ufrag("v=0\r\n") is None


async def test_a_new_connection_replaces_the_publishers_transport(worker: Worker) -> None:
    first = await start_publisher(worker, ROOM, "pub", audio=False)
    router = await _router(worker)
    await wait_for(lambda: len(router.producers) == 1, 10)
    old_transport, old_producer = router.transports[PeerId("pub")], next(iter(router.producers.values()))

    # The same connection renegotiating (same ICE credentials) keeps its transport and producer.
    await first.setLocalDescription(await first.createOffer())
    answer = await worker.publish(ROOM, PeerId("pub"), UserId("user-pub"), first.localDescription.sdp)
    await first.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    assert router.transports[PeerId("pub")] is old_transport and not old_producer.closed

    second = await start_publisher(worker, ROOM, "pub", audio=False)
    try:
        assert router.transports[PeerId("pub")] is not old_transport
        assert old_producer.closed
        await wait_for(lambda: len(router.producers) == 1 and old_producer not in router.producers.values(), 10)
        viewer = await start_viewer(worker, ROOM, "viewer")
        try:
            await viewer.wait_frames(5, timeout=20)
        finally:
            await viewer.close()
    finally:
        await first.close()
        await second.close()


async def _router(worker: Worker):  # type: ignore[no-untyped-def]
    await wait_for(lambda: ROOM in worker.routers, 10)
    return worker.routers[ROOM]
