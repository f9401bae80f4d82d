"""Calls and matches through the SFU (``node.call_media = "sfu"``) over /ws with the real SFU worker and
real aiortc peers: media both ways, a moderator's hidden tap the parties cannot notice, the room closed
when the call ends; and a tap refused on a P2P call."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from sfu.events import RedisEventSink
from sfu.worker import Worker
from switchboard.events import TapEvent, decode
from switchboard.ids import RoomId
from switchboard.keyspace import EVENTS_STREAM
from switchboard.settings import NodeSettings, SettingsError, load_settings
from tests.sfu.peers import MovingVideo, Viewer, answer_offer, client_pc
from tests.signaling.conftest import SETTINGS, Node, NodeFactory, Peer

SFU_SETTINGS = dataclasses.replace(SETTINGS, call_media="sfu")


def real_sfu(workers: list[Worker]) -> Callable[[Any], Any]:
    @contextlib.asynccontextmanager
    async def open_media(redis: Any) -> AsyncIterator[Worker]:
        worker = Worker(addresses=("127.0.0.1",), events=RedisEventSink(redis))
        workers.append(worker)
        await worker.start()
        try:
            yield worker
        finally:
            await worker.close()

    return open_media


class CountingViewer(Viewer):
    """Also counts decoded frames per track (a tap must get both parties' pictures)."""

    def __init__(self) -> None:
        super().__init__(client_pc())
        self.per_track: dict[str, int] = {}

    async def _pull(self, track) -> None:  # type: ignore[no-untyped-def]
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                await track.recv()
                self.frames[track.kind] += 1
                self.per_track[track.id] = self.per_track.get(track.id, 0) + 1


def receiver() -> CountingViewer:
    viewer = CountingViewer()

    @viewer.pc.on("track")
    def on_track(track) -> None:  # type: ignore[no-untyped-def]
        viewer.tasks.append(asyncio.ensure_future(viewer._pull(track)))

    return viewer


async def publish(party: Peer, call_id: str) -> RTCPeerConnection:
    pc = client_pc()
    pc.addTrack(MovingVideo(320, 240))
    await pc.setLocalDescription(await pc.createOffer())
    answer = (await party.ok("call.publish", call_id=call_id, sdp=pc.localDescription.sdp))["sdp"]
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return pc


async def subscribe(peer: Peer, call_id: str, kind: str = "call.subscribe", leg: str = "subscribe") -> CountingViewer:
    viewer = receiver()
    offer = (await peer.ok(kind, call_id=call_id))["sdp"]
    await peer.ok("call.sfu_answer", call_id=call_id, leg=leg, sdp=await answer_offer(viewer, offer))
    return viewer


async def accepted_call(node: Node, token: Callable[..., str], a: str, b: str) -> tuple[Peer, Peer, str]:
    pa, pb = await node.connect(token(a)), await node.connect(token(b))
    call_id = (await pa.ok("call.invite", to=b))["call_id"]
    await pb.expect("call.incoming", call_id=call_id)
    assert (await pb.ok("call.accept", call_id=call_id))["media"] == SFU_SETTINGS.call_media
    assert (await pa.expect("call.accepted", call_id=call_id))["media"] == "sfu"
    assert (await pb.expect("call.accepted", call_id=call_id))["media"] == "sfu"
    return pa, pb, call_id


async def producers(worker: Worker, room: str, n: int) -> None:
    async with asyncio.timeout(20):
        while len(getattr(worker.routers.get(RoomId(room)), "producers", {})) < n:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_call_media_through_sfu_with_hidden_tap(make_node: NodeFactory, token: Callable[..., str],
                                                       redis: Any) -> None:
    workers: list[Worker] = []
    node = await make_node(SFU_SETTINGS, open_media=real_sfu(workers))
    pa, pb, call_id = await accepted_call(node, token, "amy", "bob")
    pcs: list[RTCPeerConnection] = []
    viewers: list[Viewer] = []
    try:
        pcs += [await publish(pa, call_id), await publish(pb, call_id)]
        await producers(workers[0], call_id, 2)
        viewers += [await subscribe(pa, call_id), await subscribe(pb, call_id)]
        # Each party gets exactly the other's camera (never its own back), decoded by aiortc.
        for viewer in viewers:
            assert viewer.pc.remoteDescription.sdp.count("m=video") == 1
            await viewer.wait_frames(5, timeout=30)
        seen_sdp = [v.pc.remoteDescription.sdp for v in viewers]
        before = [len(pa.seen), len(pb.seen)]

        mod = await node.connect(token("mia", moderate=True, hidden=True))
        listed = (await mod.ok("call.list"))["calls"]
        assert [(c["call_id"], c["users"], c["media"], c["kind"]) for c in listed] == [
            (call_id, ["amy", "bob"], "sfu", "call")]
        tap = await subscribe(mod, call_id, "call.tap", "tap")
        viewers.append(tap)
        assert tap.pc.remoteDescription.sdp.count("m=video") == 2  # both parties' cameras
        await tap.wait_frames(10, timeout=30)
        async with asyncio.timeout(30):  # both parties' cameras decode on the tap
            while not (len(tap.per_track) == 2 and min(tap.per_track.values()) >= 5):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        for viewer in viewers[:2]:
            await viewer.wait_frames(viewer.frames["video"] + 5, timeout=30)  # still flowing with the tap open

        # Nothing the parties see differs: no message, the same SDP, the SFU counts two viewers.
        await pa.ok("ping")
        await pb.ok("ping")
        assert [len(pa.seen), len(pb.seen)] == before, (pa.seen, pb.seen)
        assert [v.pc.remoteDescription.sdp for v in viewers[:2]] == seen_sdp
        assert (await workers[0].room_stats(RoomId(call_id))).viewers == 2
        assert (await pa.request("call.tap", call_id=call_id))["code"] == "forbidden"

        # Closing the tap is as silent; a second tap is then closed by the call's end.
        await mod.ok("call.untap", call_id=call_id)
        await tap.close()
        viewers.remove(tap)
        await pa.ok("ping")
        await pb.ok("ping")
        assert [len(pa.seen), len(pb.seen)] == before, (pa.seen, pb.seen)
        viewers.append(await subscribe(mod, call_id, "call.tap", "tap"))

        await pa.ok("call.hangup", call_id=call_id)
        await pb.expect("call.ended", call_id=call_id)
        assert (await mod.expect("call.sfu_closed", call_id=call_id))["leg"] == "tap"
        assert RoomId(call_id) not in workers[0].routers  # the call's room is closed
        assert (await mod.ok("call.list"))["calls"] == []
        events = [e for e in (decode(f) for _, f in await redis.xrange(EVENTS_STREAM))
                  if isinstance(e, TapEvent) and e.room == call_id]
        assert [(e.type, e.moderator) for e in events] == [("tap_opened", "mia"), ("tap_closed", "mia")] * 2
        assert all(e.publishers == ("amy", "bob") for e in events)
    finally:
        for viewer in viewers:
            await viewer.close()
        for pc in pcs:
            await pc.close()


async def test_match_media_through_sfu_and_room_closed_when_a_party_leaves(
        make_node: NodeFactory, token: Callable[..., str]) -> None:
    workers: list[Worker] = []
    node = await make_node(SFU_SETTINGS, open_media=real_sfu(workers))
    pa, pb = await node.connect(token("kim")), await node.connect(token("lou"))
    ticket = {"country": "FR", "age": 30}
    await pa.ok("queue.join", ticket=ticket)
    await pb.ok("queue.join", ticket=ticket)
    found = [await pa.expect("match.found"), await pb.expect("match.found")]
    assert [f["media"] for f in found] == ["sfu", "sfu"]
    sid = found[0]["session_id"]
    pcs: list[RTCPeerConnection] = []
    viewers: list[Viewer] = []
    try:
        # One party subscribes before the other publishes: the SFU's next offer comes as call.sfu_offer.
        pcs.append(await publish(pa, sid))
        await producers(workers[0], sid, 1)
        viewers.append(await subscribe(pb, sid))
        viewers.append(await subscribe(pa, sid))
        pcs.append(await publish(pb, sid))
        offer = await pa.expect("call.sfu_offer", call_id=sid, leg="subscribe")
        await pa.ok("call.sfu_answer", call_id=sid, leg="subscribe", sdp=await answer_offer(viewers[1], offer["sdp"]))
        for viewer in viewers:
            await viewer.wait_frames(5, timeout=30)
        await pb.ok("queue.leave")  # (the real matchmaker then sends match.ended to kim; the fake does not)
        assert RoomId(sid) not in workers[0].routers
    finally:
        for viewer in viewers:
            await viewer.close()
        for pc in pcs:
            await pc.close()


async def test_tap_on_a_p2p_call_is_refused(node: Node, token: Callable[..., str]) -> None:
    pa, pb = await node.connect(token("ned")), await node.connect(token("ola"))
    call_id = (await pa.ok("call.invite", to="ola"))["call_id"]
    await pb.expect("call.incoming", call_id=call_id)
    assert (await pb.ok("call.accept", call_id=call_id))["media"] == "p2p"
    assert (await pa.expect("call.accepted", call_id=call_id))["media"] == "p2p"
    mod = await node.connect(token("max", moderate=True, hidden=True))
    assert [c["media"] for c in (await mod.ok("call.list"))["calls"]] == ["p2p"]
    refused = await mod.request("call.tap", call_id=call_id)
    assert refused["code"] == "unavailable" and "peer-to-peer" in refused["message"]
    assert (await pa.request("call.publish", call_id=call_id, sdp="v=0"))["code"] == "conflict"
    assert (await pa.request("call.list"))["code"] == "forbidden"
    await pa.ok("call.hangup", call_id=call_id)
    await pb.expect("call.ended", call_id=call_id)
    assert (await mod.ok("call.list"))["calls"] == []


def test_call_media_setting_is_validated() -> None:
    assert (NodeSettings().call_media, NodeSettings().match_media) == ("p2p", "sfu")
    with pytest.raises(SettingsError, match="call_media"):
        NodeSettings(call_media="mesh")
    with pytest.raises(SettingsError, match="match_media"):
        NodeSettings(match_media="mesh")
    assert load_settings(environ={"SWITCHBOARD_NODE_CALL_MEDIA": "sfu"}).node.call_media == "sfu"
    assert load_settings(environ={"SWITCHBOARD_NODE_MATCH_MEDIA": "p2p"}).node.match_media == "p2p"


async def test_by_default_matches_are_tappable_and_friends_calls_are_p2p(
        make_node: NodeFactory, token: Callable[..., str]) -> None:
    """The category decides, when the call starts: strangers' matches go through the SFU (a
    moderator can tap them), friends' calls stay peer to peer (setting ``node.call_media``)."""
    node = await make_node()  # FakeMedia: a node with an SFU, default settings
    pa, pb = await node.connect(token("una")), await node.connect(token("vic"))
    ticket = {"country": "FR", "age": 30}
    await pa.ok("queue.join", ticket=ticket)
    await pb.ok("queue.join", ticket=ticket)
    found = [await pa.expect("match.found"), await pb.expect("match.found")]
    assert [f["media"] for f in found] == ["sfu", "sfu"]
    await pa.ok("queue.leave")
    call_id = (await pa.ok("call.invite", to="vic"))["call_id"]
    await pb.expect("call.incoming", call_id=call_id)
    assert (await pb.ok("call.accept", call_id=call_id))["media"] == "p2p"


async def test_call_room_closes_when_a_party_is_gone_and_when_the_node_stops(
        make_node: NodeFactory, token: Callable[..., str]) -> None:
    node = await make_node(dataclasses.replace(SFU_SETTINGS, resume_window_s=0.2))  # FakeMedia: records calls
    pa, pb, gone = await accepted_call(node, token, "pia", "quin")
    await pa.ok("call.publish", call_id=gone, sdp="v=0 pia")
    await pb.ws.close()  # quin's socket drops and the resume window passes: the call ends (`left`)
    assert (await pa.expect("call.ended", call_id=gone))["reason"] == "left"
    assert ("close_room", gone) in node.media.calls

    pc, _, live = await accepted_call(node, token, "rex", "sia")
    await pc.ok("call.publish", call_id=live, sdp="v=0 rex")
    await node.client.close()  # node stop: CallMedia.close() closes every call room
    assert ("close_room", live) in node.media.calls
