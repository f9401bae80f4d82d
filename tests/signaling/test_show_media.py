"""A show over /ws with the real SFU worker and real aiortc peers on 127.0.0.1: the broadcaster
publishes, a viewer subscribes and decodes frames, a hidden moderator taps without being seen."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiortc import RTCSessionDescription

from sfu.events import RedisEventSink
from sfu.worker import Worker
from switchboard.ids import RoomId
from tests.sfu.peers import MovingVideo, Viewer, answer_offer, client_pc
from tests.signaling.conftest import Node, NodeFactory, Peer

ROOM = "live"


async def subscribe_over_ws(peer: Peer) -> Viewer:
    viewer = Viewer(client_pc())

    @viewer.pc.on("track")
    def on_track(track) -> None:  # type: ignore[no-untyped-def]
        viewer.tasks.append(asyncio.ensure_future(viewer._pull(track)))

    offer = (await peer.ok("show.subscribe", room=ROOM))["sdp"]
    await peer.ok("show.answer", room=ROOM, sdp=await answer_offer(viewer, offer))
    return viewer


async def nobody_else_publishes(node: Node, token: Callable[..., str], worker: Worker, pcs: list[Any]) -> None:
    """A stranger with a real camera offer (a viewer token for the show, then its own room's
    broadcaster token on the same socket) and the owner's second tab are all refused: the SFU
    room keeps exactly the caster's producers."""
    router = worker.routers[RoomId(ROOM)]
    producers = set(router.producers)
    stranger_pc = client_pc()
    pcs.append(stranger_pc)
    stranger_pc.addTrack(MovingVideo(160, 120))
    await stranger_pc.setLocalDescription(await stranger_pc.createOffer())
    offer = stranger_pc.localDescription.sdp
    stranger = await node.connect(token("stranger", ROOM, subscribe=True))
    await stranger.ok("show.join", room=ROOM)
    assert (await stranger.request("show.publish", room=ROOM, sdp=offer))["code"] == "forbidden"
    await stranger.ok("token.refresh", token=token("stranger", "strangers-own", publish=True, verified=True))
    assert (await stranger.request("show.publish", room=ROOM, sdp=offer))["code"] == "forbidden"
    second_tab = await node.connect(token("caster", ROOM, publish=True, verified=True))
    await second_tab.ok("show.join", room=ROOM)
    assert (await second_tab.request("show.publish", room=ROOM, sdp=offer))["code"] == "conflict"
    assert set(router.producers) == producers


async def test_show_over_ws_with_real_sfu(make_node: NodeFactory, token: Callable[..., str]) -> None:
    workers: list[Worker] = []

    @contextlib.asynccontextmanager
    async def open_media(redis: Any) -> AsyncIterator[Worker]:
        worker = Worker(addresses=("127.0.0.1",), events=RedisEventSink(redis))
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
    pc.addTrack(MovingVideo(320, 240))
    await pc.setLocalDescription(await pc.createOffer())
    answer = (await host.ok("show.publish", room=ROOM, sdp=pc.localDescription.sdp))["sdp"]
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    viewers: list[Viewer] = []
    pcs = [pc]
    try:
        async with asyncio.timeout(20):
            while not (RoomId(ROOM) in workers[0].routers and workers[0].routers[RoomId(ROOM)].producers):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        fan = await node.connect(token("fan", ROOM, subscribe=True))
        assert (await fan.ok("show.join", room=ROOM))["viewers"] == 1
        viewers.append(await subscribe_over_ws(fan))
        mod = await node.connect(token("mod", ROOM, subscribe=True, hidden=True, moderate=True))
        joined = await mod.ok("show.join", room=ROOM)
        assert joined["hidden"] is True and joined["viewers"] == 1 and "mod" not in joined["roster"]
        viewers.append(await subscribe_over_ws(mod))
        await viewers[0].wait_frames(5, timeout=30)
        await viewers[1].wait_frames(5, timeout=30)
        roster = await fan.ok("show.roster", room=ROOM)
        assert roster["roster"] == ["caster", "fan"] and roster["viewers"] == 1
        await nobody_else_publishes(node, token, workers[0], pcs)
        await viewers[0].wait_frames(viewers[0].frames["video"] + 5, timeout=30)
        assert viewers[0].sizes == {(320, 240)}  # the caster's video, never the stranger's 160x120
        stats = await workers[0].room_stats(RoomId(ROOM))
        assert stats.viewers == 1  # the SFU agrees: the tap is not counted
        assert not [m for m in fan.seen + host.seen if "mod" in str(m.get("roster", ""))]
        await host.ok("show.end", room=ROOM)
        await fan.expect("show.ended", room=ROOM)
    finally:
        for viewer in viewers:
            await viewer.close()
        for each in pcs:
            await each.close()
