"""A moderator's tap over /ws, on a call through the SFU and on a show, seen from the parties' side: every
RTCP packet each party's peer connections receive is counted by type over two windows of the same
number of SFU report periods, one without and one with the tap (which also sends PLI, FIR and NACKs of
its own). The counts are equal; the publishers' PLIs are exactly the scheduled ones in both."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription

from sfu.events import RedisEventSink
from sfu.producer import Producer
from sfu.router import Router
from sfu.worker import Worker
from switchboard.ids import RoomId
from tests.sfu.peers import MovingVideo, Viewer, client_pc
from tests.sfu.rtcp_watch import RtcpWatch, Ticks, window
from tests.sfu.test_taps import send_from_tap
from tests.signaling.conftest import NodeFactory
from tests.signaling.test_call_media import SFU_SETTINGS, accepted_call, producers, publish, subscribe
from tests.signaling.test_show_media import subscribe_over_ws

INTERVAL = 2.0
WINDOW_TICKS = 8
ROOM = "live"


def sfu_with_schedule(workers: list[Worker]) -> Callable[[Any], Any]:
    @contextlib.asynccontextmanager
    async def open_media(redis: Any) -> AsyncIterator[Worker]:
        worker = Worker(addresses=("127.0.0.1",), events=RedisEventSink(redis), keyframe_interval_s=INTERVAL)
        workers.append(worker)
        await worker.start()
        try:
            yield worker
        finally:
            await worker.close()

    return open_media


def video_of(router: Router, user: str) -> Producer:
    return next(p for p in router.producers.values()
                if p.kind == "video" and router.transports[p.peer_id].user_id == user)


async def same_rtcp_with_and_without_tap(router: Router, parties: dict[str, tuple[RTCPeerConnection, str | None]],
                                         open_tap: Callable[[], Awaitable[Viewer]]) -> None:
    """``parties``: a name -> (a party's peer connection, the user whose video it publishes, or None
    for a receiving one). Measures two windows of WINDOW_TICKS SFU ticks and compares them."""
    watches = {name: RtcpWatch(pc) for name, (pc, _) in parties.items()}
    videos = {name: video_of(router, user) for name, (_, user) in parties.items() if user is not None}

    def state() -> dict[str, Counter[str]]:
        out = {name: w.snapshot() for name, w in watches.items()}
        for name, video in videos.items():
            out[name]["scheduled"] = router.keyframe_schedule.fired[video.producer_id]
            out[name]["nacks_sent"] = video.nacks_sent
        return out

    ticks = Ticks(router, state)
    first = ticks.n + 2
    start = await ticks.probe_at(first)
    middle = await ticks.probe_at(first + WINDOW_TICKS)
    tap = await open_tap()
    await tap.wait_frames(3, timeout=WINDOW_TICKS - 2)  # it started, at a scheduled keyframe, unasked
    hidden = next(peer for peer, t in router.transports.items() if t.hidden)
    await send_from_tap(tap, router, hidden)
    end = await ticks.probe_at(first + 2 * WINDOW_TICKS)
    try:
        for name in parties:
            quiet, tapped = window(start[name], middle[name]), window(middle[name], end[name])
            seen = (name, dict(quiet), dict(tapped))
            for w in (quiet, tapped):  # a publisher's PLIs and NACKs: the schedule's, its own losses'
                assert w.pop("PLI", 0) == w.pop("scheduled", 0), seen
                assert w.pop("NACK", 0) == w.pop("nacks_sent", 0), seen
            assert quiet == tapped, seen
            assert quiet, name  # (the window did see the SFU's reports)
    finally:
        await tap.close()


async def test_a_tap_on_an_sfu_call_changes_no_rtcp_either_party_receives(
        make_node: NodeFactory, token: Callable[..., str]) -> None:
    workers: list[Worker] = []
    node = await make_node(SFU_SETTINGS, open_media=sfu_with_schedule(workers))
    pa, pb, call_id = await accepted_call(node, token, "amy", "bob")
    pcs: list[RTCPeerConnection] = []
    viewers: list[Viewer] = []
    try:
        pcs += [await publish(pa, call_id), await publish(pb, call_id)]
        await producers(workers[0], call_id, 2)
        viewers += [await subscribe(pa, call_id), await subscribe(pb, call_id)]
        for viewer in viewers:
            await viewer.wait_frames(5, timeout=30)
        mod = await node.connect(token("mia", moderate=True, hidden=True))

        async def open_tap() -> Viewer:
            return await subscribe(mod, call_id, "call.tap", "tap")

        await same_rtcp_with_and_without_tap(
            workers[0].routers[RoomId(call_id)],
            {"amy.publish": (pcs[0], "amy"), "bob.publish": (pcs[1], "bob"),
             "amy.subscribe": (viewers[0].pc, None), "bob.subscribe": (viewers[1].pc, None)}, open_tap)
    finally:
        for viewer in viewers:
            await viewer.close()
        for pc in pcs:
            await pc.close()


async def test_a_tap_on_a_show_changes_no_rtcp_the_broadcaster_or_a_viewer_receives(
        make_node: NodeFactory, token: Callable[..., str]) -> None:
    workers: list[Worker] = []
    node = await make_node(open_media=sfu_with_schedule(workers))
    host = await node.connect(token("caster", ROOM, publish=True))
    await host.ok("show.create")
    pc = client_pc()
    pc.addTrack(MovingVideo(320, 240))
    await pc.setLocalDescription(await pc.createOffer())
    answer = (await host.ok("show.publish", room=ROOM, sdp=pc.localDescription.sdp))["sdp"]
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    viewers: list[Viewer] = []
    try:
        await producers(workers[0], ROOM, 1)
        fan = await node.connect(token("fan", ROOM, subscribe=True))
        await fan.ok("show.join", room=ROOM)
        viewers.append(await subscribe_over_ws(fan))
        await viewers[0].wait_frames(5, timeout=30)
        mod = await node.connect(token("mod", ROOM, subscribe=True, hidden=True, moderate=True))

        async def open_tap() -> Viewer:
            await mod.ok("show.join", room=ROOM)
            return await subscribe_over_ws(mod)

        await same_rtcp_with_and_without_tap(
            workers[0].routers[RoomId(ROOM)], {"caster": (pc, "caster"), "fan": (viewers[0].pc, None)}, open_tap)
    finally:
        for viewer in viewers:
            await viewer.close()
        await pc.close()
