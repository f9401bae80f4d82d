"""Shows with a fake SFU: grants, roster and count without hidden sessions, chat limit, media calls, end."""

from __future__ import annotations

from collections.abc import Callable

from sfu.types import PeerId
from switchboard.ids import RoomId
from tests.signaling.conftest import Node, Peer


async def test_show_roster_hides_moderator_and_media_goes_to_sfu(node: Node, token: Callable[..., str]) -> None:
    host = await node.connect(token("host", "room1", publish=True, verified=True))
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
    room = "room2"
    host = await node.connect(token("h2", room, publish=True, verified=True))
    assert (await host.ok("show.create"))["room"] == room
    fan = await node.connect(token("fan", room, subscribe=True))
    assert (await fan.request("show.chat", room=room, text="early"))["code"] == "not_found"
    await fan.ok("show.join", room=room)
    codes = [(await fan.request("show.chat", room=room, text=f"line {i}"))["type"] for i in range(5)]
    assert codes[:3] == ["reply"] * 3 and "error" in codes[3:]
    assert (await host.expect("show.chat", text="line 0"))["from"] == "fan"
    nobody = await node.connect(token("nobody", room))
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
    node = await make_node(ice_servers=lambda grants: ice_servers_for(TurnSettings(host="turn.test"), secret,
                                                                        grants.sub, relay=grants.verified))
    host = await node.connect(token("host", "room9", publish=True, verified=True))
    hello = host.hello  # type: ignore[attr-defined]
    assert [s["urls"][0] for s in hello["ice_servers"]] == ["stun:turn.test:3478", "turn:turn.test:3478?transport=udp"]
    assert hello["ice_servers"][1]["username"].endswith(":host")
    created = await host.ok("show.create")
    assert created["ice_servers"][1]["username"].endswith(":host")
    viewer = await node.connect(token("viewer", "room9", subscribe=True))
    joined = await viewer.ok("show.join", room="room9")
    assert joined["ice_servers"][1]["username"].endswith(":viewer")
    # An unverified account may watch, with STUN only: no TURN credential from the node either.
    unverified = await node.connect(token("fresh", "room9", subscribe=True, verified=False))
    assert [s["urls"] for s in unverified.hello["ice_servers"]] == [["stun:turn.test:3478"]]  # type: ignore[attr-defined]
    joined = await unverified.ok("show.join", room="room9")
    assert all("username" not in s for s in joined["ice_servers"])


# --- who may publish where (issue 12, item 1: show hijack) --------------------------------------------


async def live_show(node: Node, token: Callable[..., str], room: str = "live") -> tuple[Peer, Peer]:
    """The owner's show, publishing, with one viewer."""
    host = await node.connect(token("owner", room, publish=True, subscribe=True, verified=True))
    await host.ok("show.create")
    await host.ok("show.publish", room=room, sdp="v=0 owner")
    fan = await node.connect(token("fan", room, subscribe=True))
    await fan.ok("show.join", room=room)
    return host, fan


def publishes(node: Node) -> list[tuple[object, ...]]:
    return [c for c in node.media.calls if c[0] == "publish"]


async def test_a_broadcaster_token_for_ones_own_room_opens_no_other(node: Node, token: Callable[..., str]) -> None:
    await live_show(node, token)
    before = publishes(node)
    stranger = await node.connect(token("stranger", "mine", publish=True, subscribe=True, verified=True))
    for kind, body in (("show.create", {"room": "live"}), ("show.join", {"room": "live"}),
                       ("show.publish", {"room": "live", "sdp": "v=0 stranger"}),
                       ("show.subscribe", {"room": "live"}), ("show.chat", {"room": "live", "text": "hi"}),
                       ("show.roster", {"room": "live"}), ("show.end", {"room": "live"})):
        reply = await stranger.request(kind, **body)
        assert reply["code"] == "forbidden", (kind, reply)
    # A socket token (no room) opens no show either.
    socket_only = await node.connect(token("stranger2", subscribe=True, publish=True, verified=True))
    assert (await socket_only.request("show.join", room="live"))["code"] == "forbidden"
    assert (await socket_only.request("show.create", room="live"))["code"] == "forbidden"
    assert publishes(node) == before


async def test_a_viewer_never_publishes_not_even_after_swapping_its_token(
        node: Node, token: Callable[..., str]) -> None:
    host, fan = await live_show(node, token)
    before = publishes(node)
    assert (await fan.request("show.publish", room="live", sdp="v=0 fan"))["code"] == "forbidden"
    # The forged-room attempt: inside the show on a viewer token, then a broadcaster token for its
    # own room on the same socket. Every door reads the grants of now: they name another room.
    await fan.ok("token.refresh", token=token("fan", "fans-own", publish=True, subscribe=True, verified=True))
    for kind, body in (("show.publish", {"sdp": "v=0 fan"}), ("show.subscribe", {}), ("show.chat", {"text": "x"})):
        assert (await fan.request(kind, room="live", **body))["code"] == "forbidden", kind
    assert publishes(node) == before
    await fan.ok("show.leave", room="live")  # leaving needs no grant
    await host.expect("show.roster", viewers=0)


async def test_a_publish_grant_for_the_room_is_not_enough_for_someone_elses_show(
        node: Node, token: Callable[..., str]) -> None:
    """The API gives the publish grant to the room's owner only; even so, the node checks that the
    show's owner is the token's subject."""
    await live_show(node, token)
    before = publishes(node)
    forged = await node.connect(token("stranger", "live", publish=True, subscribe=True, verified=True))
    assert (await forged.request("show.create"))["code"] == "conflict"
    await forged.ok("show.join", room="live")
    reply = await forged.request("show.publish", room="live", sdp="v=0 stranger")
    assert reply["code"] == "forbidden" and "someone else" in reply["message"]
    assert publishes(node) == before


async def test_a_second_publisher_is_refused_and_the_first_is_untouched(node: Node, token: Callable[..., str]) -> None:
    host, fan = await live_show(node, token)
    before = publishes(node)
    second = await node.connect(token("owner", "live", publish=True, subscribe=True, verified=True))
    assert (await second.request("show.create"))["code"] == "conflict"
    await second.ok("show.join", room="live")
    reply = await second.request("show.publish", room="live", sdp="v=0 second tab")
    assert reply["code"] == "conflict" and "one publisher" in reply["message"]
    assert publishes(node) == before
    # The second session leaving does not end the show; its host still publishes (renegotiates).
    await second.ok("show.leave", room="live")
    assert (await fan.ok("show.roster", room="live"))["owner"] == "owner"
    assert not [m for m in fan.seen if m["type"] == "show.ended"]
    await host.ok("show.publish", room="live", sdp="v=0 owner again")
    assert publishes(node)[-1][2] == PeerId(host.hello["session_id"])  # type: ignore[attr-defined]


async def test_an_unverified_account_cannot_broadcast(node: Node, token: Callable[..., str]) -> None:
    host = await node.connect(token("new", "fresh", publish=True, subscribe=True, verified=False))
    reply = await host.request("show.create")
    assert reply["code"] == "forbidden" and "verify" in reply["message"]
