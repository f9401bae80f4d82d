"""A join the media worker sheds is told so (``unavailable`` with ``retry_after``) and gets in when
it asks again, through the public door: /ws signaling and real aiortc peers on a node whose worker
admits one join at a time and queues none."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiortc import RTCSessionDescription

from sfu.admission import Admission
from sfu.events import MemoryEventSink
from sfu.worker import Worker
from switchboard.ids import RoomId
from tests.sfu.peers import MovingVideo, Viewer, answer_offer, client_pc
from tests.sfu.test_forwarding import wait_for
from tests.signaling.conftest import SETTINGS, NodeFactory, Peer, make_node, signer, token, token_key  # noqa: F401

ROOM = RoomId("retry")
ABUSE_LIMIT = 2
"""Error frames a socket may get in a minute before it is closed; the shed joins below are more."""


def watching(viewer: Viewer) -> Viewer:
    @viewer.pc.on("track")
    def on_track(track: Any) -> None:
        viewer.tasks.append(asyncio.ensure_future(viewer._pull(track)))

    return viewer


async def subscribe_until_admitted(fan: Peer, tries: int = 60) -> tuple[str, list[dict[str, Any]]]:
    """``show.subscribe`` as a client does it: after a shed, wait ``retry_after`` and ask again."""
    sheds: list[dict[str, Any]] = []
    for _ in range(tries):
        reply = await fan.request("show.subscribe", room=str(ROOM))
        if reply["type"] == "reply":
            return reply["sdp"], sheds
        assert reply["code"] == "unavailable" and reply["retry_after"] >= 1, reply
        sheds.append(reply)
        await asyncio.sleep(reply["retry_after"])
    raise AssertionError(f"still shed after {tries} tries")


async def test_a_shed_join_is_told_when_to_retry_and_gets_in_on_retry(
        make_node: NodeFactory, token: Callable[..., str]) -> None:  # noqa: F811 (fixtures)
    workers: list[Worker] = []

    @contextlib.asynccontextmanager
    async def open_media(redis: Any) -> AsyncIterator[Worker]:
        w = Worker(addresses=("127.0.0.1",), events=MemoryEventSink())
        w.admission = Admission(w.lag, in_flight=1, queue=0, lag_limit_s=10.0)  # one join at a time, no queue
        workers.append(w)
        await w.start()
        try:
            yield w
        finally:
            await w.close()

    node = await make_node(dataclasses.replace(SETTINGS, ws_abuse_limit=ABUSE_LIMIT), open_media=open_media)
    host = await node.connect(token("caster", str(ROOM), publish=True))
    await host.ok("show.create")
    pub = client_pc()
    pub.addTrack(MovingVideo(160, 120))
    await pub.setLocalDescription(await pub.createOffer())
    answer = (await host.ok("show.publish", room=str(ROOM), sdp=pub.localDescription.sdp))["sdp"]
    await pub.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    first, second = watching(Viewer(client_pc())), watching(Viewer(client_pc()))
    try:
        await wait_for(lambda: workers[0].routers[ROOM].producers, 20)
        a = await node.connect(token("a", str(ROOM), subscribe=True))
        b = await node.connect(token("b", str(ROOM), subscribe=True))
        await a.ok("show.join", room=str(ROOM))
        await b.ok("show.join", room=str(ROOM))
        offer_a = (await a.ok("show.subscribe", room=str(ROOM)))["sdp"]  # holds the worker's one join slot

        for _ in range(ABUSE_LIMIT + 1):  # shed while a's join is under way: told, and never taken for abuse
            shed = await b.request("show.subscribe", room=str(ROOM))
            assert shed["type"] == "error" and shed["code"] == "unavailable", shed
            assert shed["retry_after"] >= 1 and "retry" in shed["message"]
        assert workers[0].admission.refused == ABUSE_LIMIT + 1

        await a.ok("show.answer", room=str(ROOM), sdp=await answer_offer(first, offer_a))
        offer_b, sheds = await subscribe_until_admitted(b)  # a's connection gives the slot back
        await b.ok("show.answer", room=str(ROOM), sdp=await answer_offer(second, offer_b))
        await first.wait_frames(3, timeout=30)
        await second.wait_frames(3, timeout=30)  # an admitted join reaches its first frames
        assert pub.connectionState == "connected"
        assert b.ws.close_code is None
        assert all(s["retry_after"] >= 1 for s in sheds)
    finally:
        await first.close()
        await second.close()
        await pub.close()
