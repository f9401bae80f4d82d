"""``show.stats`` over /ws with the real SFU and real aiortc peers: a viewer reads its own link (the
SFU's estimate toward it, its loss and round trip), a hidden tap reads its own, nobody reads another's."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiortc import RTCSessionDescription

from sfu.worker import Worker
from switchboard.ids import RoomId
from tests.sfu.peers import MovingVideo, Viewer, client_pc
from tests.signaling.conftest import NodeFactory, Peer
from tests.signaling.test_call_media import producers
from tests.signaling.test_show_media import subscribe_over_ws
from tests.signaling.test_tap_rtcp import sfu_with_schedule

ROOM = "live"


async def own_link(peer: Peer, ready: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Asks ``show.stats`` until ``ready`` holds (feedback and receiver reports come once a second)."""
    for _ in range(150):
        reply = await peer.ok("show.stats", room=ROOM)
        if ready(reply):
            return reply
        await asyncio.sleep(0.1)
    raise AssertionError(f"the link never became ready: {reply}")


def estimated(reply: dict[str, Any]) -> bool:
    return reply["estimate_source"] == "remb" and reply["rtt_ms"] is not None


async def test_a_viewer_and_a_tap_each_read_their_own_link_and_nobody_reads_another(
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
        assert (await fan.request("show.stats", room=ROOM))["code"] == "not_found"  # not in the show
        await fan.ok("show.join", room=ROOM)
        assert (await fan.request("show.stats", room=ROOM))["code"] == "not_found"  # no media peer yet
        viewers.append(await subscribe_over_ws(fan))
        await viewers[0].wait_frames(5, timeout=30)
        mine = await own_link(fan, estimated)
        assert mine["room"] == ROOM and mine["estimate_kbps"] > 0 and 0 <= mine["loss"] <= 1, mine
        assert mine["rtt_ms"] >= 0
        router = workers[0].routers[RoomId(ROOM)]
        fan_peer = next(p for p, t in router.transports.items() if t.user_id == "fan")
        assert "peer" not in mine and fan_peer not in str(mine)

        # One encoding from this broadcaster: a cap on layers is taken and changes nothing.
        assert (await fan.ok("show.layers", room=ROOM, max_layers=1))["simulcast_tracks"] == 0
        assert (await fan.ok("show.layers", room=ROOM))["simulcast_tracks"] == 0
        assert (await fan.request("show.layers", room=ROOM, max_layers=0))["code"] == "bad_message"

        # Naming another peer is not a thing: the body carries a room only, the answer is one's own.
        caster_peer = next(p for p, t in router.transports.items() if t.user_id == "caster")
        reply = await fan.request("show.stats", room=ROOM, peer_id=caster_peer)
        assert reply["type"] == "error" or reply["transport_cc_feedback_sent"] == 0, reply

        # A hidden tap reads its own link; the viewer's own reads go on as before, the roster never moves.
        mod = await node.connect(token("mod", ROOM, subscribe=True, hidden=True, moderate=True))
        await mod.ok("show.join", room=ROOM)
        viewers.append(await subscribe_over_ws(mod))
        await viewers[1].wait_frames(3, timeout=30)
        tapped = await own_link(mod, estimated)
        assert tapped["estimate_kbps"] > 0
        assert (await fan.ok("show.roster", room=ROOM))["roster"] == ["caster", "fan"]

        # The broadcaster reads its publisher link: transport-cc feedback the SFU sent it, if negotiated.
        theirs = await host.ok("show.stats", room=ROOM)
        assert theirs["estimate_kbps"] is None and theirs["transport_cc_feedback_sent"] >= 0

        # Another room's token opens nothing here.
        other = await node.connect(token("fan", "elsewhere", subscribe=True))
        assert (await other.request("show.stats", room=ROOM))["code"] == "forbidden"
    finally:
        for viewer in viewers:
            await viewer.close()
        await pc.close()

