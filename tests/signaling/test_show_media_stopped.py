"""The broadcaster's peer connection dies (here: its page closes it) while its socket stays: over /ws
with the real SFU, the broadcaster gets ``show.peer_closed`` with the real reason and every viewer
``show.media_stopped``; the show goes on (issue 12, "Any standard client")."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiortc import RTCSessionDescription

from sfu.events import MemoryEventSink
from sfu.orphans import HOLD_S
from sfu.worker import Worker
from switchboard.ids import RoomId
from tests.sfu.peers import MovingVideo, client_pc
from tests.signaling.conftest import STEP_S, NodeFactory
from tests.signaling.test_show_media import ROOM, subscribe_over_ws


async def test_a_broadcasters_dead_transport_is_told_to_everyone(make_node: NodeFactory,
                                                                 token: Callable[..., str]) -> None:
    workers: list[Worker] = []

    @contextlib.asynccontextmanager
    async def open_media(redis: Any) -> AsyncIterator[Worker]:
        worker = Worker(addresses=("127.0.0.1",), events=MemoryEventSink())
        workers.append(worker)
        await worker.start()
        try:
            yield worker
        finally:
            await worker.close()

    node = await make_node(open_media=open_media)
    host = await node.connect(token("caster", ROOM, publish=True, verified=True))
    await host.ok("show.create")
    pc = client_pc()
    pc.addTrack(MovingVideo(160, 120))
    await pc.setLocalDescription(await pc.createOffer())
    answer = (await host.ok("show.publish", room=ROOM, sdp=pc.localDescription.sdp))["sdp"]
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    viewer = None
    try:
        async with asyncio.timeout(20):
            while not workers[0].routers[RoomId(ROOM)].producers:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        fan = await node.connect(token("fan", ROOM, subscribe=True))
        await fan.ok("show.join", room=ROOM)
        viewer = await subscribe_over_ws(fan)
        await viewer.wait_frames(3, timeout=30)
        await pc.close()  # the broadcaster's connection ends; its socket stays
        assert (await host.expect("show.peer_closed"))["reason"] == "closed"
        stopped = await fan.expect("show.media_stopped")
        assert stopped == {"type": "show.media_stopped", "room": ROOM, "reason": "closed"}
        # The tracks leave the viewer's connection once the broadcaster did not publish again within
        # the SFU's hold (sfu/orphans.py: they would have come back in place).
        for _ in range(int(HOLD_S / STEP_S) + 2):
            with contextlib.suppress(TimeoutError):
                offer = await fan.expect("show.offer")
                break
        else:
            raise AssertionError("no show.offer after the hold")
        assert "a=inactive" in offer["sdp"]
        assert (await fan.ok("show.roster", room=ROOM))["roster"] == ["caster", "fan"]  # the show goes on
        assert not [m for m in fan.seen if m["type"] == "show.peer_closed"]
    finally:
        if viewer is not None:
            await viewer.close()
        await pc.close()
