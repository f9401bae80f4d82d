"""Shows with a fake SFU: grants, roster and count without hidden sessions, chat limit, media calls, end."""

from __future__ import annotations

from collections.abc import Callable

from sfu.types import PeerId
from switchboard.ids import RoomId
from tests.signaling.conftest import Node


async def test_show_roster_hides_moderator_and_media_goes_to_sfu(node: Node, token: Callable[..., str]) -> None:
    host = await node.connect(token("host", "room1", publish=True))
    assert (await host.request("show.create", room="other"))["code"] == "forbidden"
    created = await host.ok("show.create")
    assert created["room"] == "room1" and created["roster"] == ["host"] and created["viewers"] == 0
    viewer = await node.connect(token("viewer", "room1", subscribe=True))
    joined = await viewer.ok("show.join", room="room1")
    assert joined["roster"] == ["host", "viewer"] and joined["viewers"] == 1
    await host.expect("show.roster", viewers=1)
    mod = await node.connect(token("mod", "room1", subscribe=True, hidden=True, moderate=True))
    tapped = await mod.ok("show.join", room="room1")
    assert tapped["hidden"] is True and tapped["roster"] == ["host", "viewer"] and tapped["viewers"] == 1
    assert (await viewer.ok("show.roster", room="room1"))["roster"] == ["host", "viewer"]
    assert (await host.ok("show.publish", room="room1", sdp="v=0 pub"))["sdp"].startswith("answer-for-")
    assert (await viewer.ok("show.subscribe", room="room1"))["sdp"].startswith("offer-for-")
    await viewer.ok("show.answer", room="room1", sdp="v=0 ans")
    await viewer.ok("show.ice", room="room1", candidate=None)
    assert (await mod.ok("show.subscribe", room="room1"))["sdp"]
    assert ("subscribe", "room1", PeerId(tapped["peer_id"]), "mod", True) in node.media.calls
    assert (await viewer.request("show.publish", room="room1", sdp="v=0"))["code"] == "forbidden"
    assert (await host.request("show.publish", room="room1", sdp="garbage"))["code"] == "negotiation_failed"
    assert (await mod.request("show.chat", room="room1", text="boo"))["code"] == "forbidden"
    assert node.media.listener is not None
    await node.media.listener.renegotiation_needed(RoomId("room1"), PeerId(joined["peer_id"]))
    assert (await viewer.expect("show.offer"))["sdp"] == f"reoffer-for-{joined['peer_id']}"
    await mod.ok("show.leave", room="room1")
    await viewer.ok("show.leave", room="room1")
    assert (await host.expect("show.roster", viewers=0))["roster"] == ["host"]
    assert not [m for m in host.seen + viewer.seen if m["type"] == "show.roster" and "mod" in m["roster"]]


async def test_show_chat_rate_limit_and_end(node: Node, token: Callable[..., str]) -> None:
    host = await node.connect(token("h2", publish=True))
    room = (await host.ok("show.create"))["room"]
    fan = await node.connect(token("fan", subscribe=True))
    assert (await fan.request("show.chat", room=room, text="early"))["code"] == "not_found"
    await fan.ok("show.join", room=room)
    codes = [(await fan.request("show.chat", room=room, text=f"line {i}"))["type"] for i in range(5)]
    assert codes[:3] == ["reply"] * 3 and "error" in codes[3:]
    assert (await host.expect("show.chat", text="line 0"))["from"] == "fan"
    nobody = await node.connect(token("nobody"))
    assert (await nobody.request("show.join", room=room))["code"] == "forbidden"
    assert (await nobody.request("show.create"))["code"] == "forbidden"
    assert (await fan.request("show.end", room=room))["code"] == "forbidden"
    await host.ok("show.end", room=room)
    await fan.expect("show.ended", room=room)
    assert ("close_room", room) in node.media.calls
    assert (await fan.request("show.join", room=room))["code"] == "not_found"


async def test_hello_and_show_replies_carry_ice_servers_for_that_user(make_node, token) -> None:  # type: ignore[no-untyped-def]
    from switchboard.settings import TurnSettings
    from turn.ice import ice_servers_for

    secret = "node-turn-secret-0123456789abcdef"
    node = await make_node(ice_servers=lambda user: ice_servers_for(TurnSettings(host="turn.test"), secret, user))
    host = await node.connect(token("host", "room9", publish=True))
    hello = host.hello  # type: ignore[attr-defined]
    assert [s["urls"][0] for s in hello["ice_servers"]] == ["stun:turn.test:3478", "turn:turn.test:3478?transport=udp"]
    assert hello["ice_servers"][1]["username"].endswith(":host")
    created = await host.ok("show.create")
    assert created["ice_servers"][1]["username"].endswith(":host")
    viewer = await node.connect(token("viewer", "room9", subscribe=True))
    joined = await viewer.ok("show.join", room="room9")
    assert joined["ice_servers"][1]["username"].endswith(":viewer")
