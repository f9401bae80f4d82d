"""Show chat moderation: the broadcaster and a hidden moderator delete a line, pin one, mute a viewer
for some minutes and remove one with a cool-down; every member sees each effect at once, the
moderator never appears (the actor is "moderator"), and nobody else may do any of it."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from tests.signaling.conftest import Node, Peer


async def _show(node: Node, token: Callable[..., str]) -> tuple[str, Peer, Peer, Peer, Peer]:
    room = f"show-{uuid.uuid4().hex[:8]}"
    host = await node.connect(token("host", room, publish=True))
    await host.ok("show.create")
    ann, ben = (await node.connect(token("ann", room, subscribe=True)), await node.connect(token("ben", room,
                                                                                                 subscribe=True)))
    await ann.ok("show.join", room=room)
    await ben.ok("show.join", room=room)
    mod = await node.connect(token("mod", room, subscribe=True, hidden=True, moderate=True))
    assert (await mod.ok("show.join", room=room))["hidden"] is True
    return room, host, ann, ben, mod


async def test_a_hidden_moderator_deletes_a_line_and_mutes_a_viewer(node: Node, token: Callable[..., str]) -> None:
    room, host, ann, ben, mod = await _show(node, token)
    line = await ben.ok("show.chat", room=room, text="spam spam")
    for peer in (host, ann, mod):
        seen = await peer.expect("show.chat", text="spam spam")
        assert seen["id"] == line["id"] and seen["from"] == "ben"

    await mod.ok("show.chat_delete", room=room, message_id=line["id"])
    for peer in (host, ann, ben):
        gone = await peer.expect("show.chat_deleted", message_id=line["id"])
        assert gone["by"] == "moderator"
    await mod.ok("show.mute", room=room, user="ben", minutes=5)
    for peer in (host, ann, ben):
        muted = await peer.expect("show.muted", user="ben")
        assert muted["by"] == "moderator" and muted["until"] > 0
    assert (await ben.request("show.chat", room=room, text="let me talk"))["code"] == "muted"
    await ann.ok("show.chat", room=room, text="ann still talks")
    # The moderator acted without appearing: no roster ever named it.
    rosters = [m for p in (host, ann, ben) for m in p.seen if m["type"] == "show.roster"]
    assert all("mod" not in m["roster"] for m in rosters)
    # A line already deleted, or one that never was: not_found; nothing is sent.
    assert (await mod.request("show.chat_delete", room=room, message_id=line["id"]))["code"] == "not_found"


async def test_owner_pins_and_kicks_with_a_cool_down(node: Node, token: Callable[..., str]) -> None:
    room, host, ann, ben, mod = await _show(node, token)
    line = await ann.ok("show.chat", room=room, text="welcome all")
    await host.ok("show.chat_pin", room=room, message_id=line["id"])
    for peer in (ann, ben, mod):
        pinned = await peer.expect("show.chat_pinned")
        assert pinned["message"] == {"id": line["id"], "from": "ann", "text": "welcome all"} and pinned["by"] == "owner"

    await host.ok("show.kick", room=room, user="ben", minutes=3)
    assert (await ben.expect("show.ended", room=room))["reason"] == "removed"
    for peer in (ann, mod):
        kicked = await peer.expect("show.kicked", user="ben")
        assert kicked["by"] == "owner"
    assert (await ann.expect("show.roster", viewers=1))["roster"] == ["host", "ann"]
    refused = await ben.request("show.join", room=room)
    assert refused["code"] == "forbidden" and "removed" in refused["message"]
    late = await node.connect(token("cal", room, subscribe=True))
    assert (await late.ok("show.join", room=room))["pinned"]["text"] == "welcome all"


async def test_only_the_owner_and_moderators_moderate(node: Node, token: Callable[..., str]) -> None:
    room, _host, ann, ben, mod = await _show(node, token)
    line = await ben.ok("show.chat", room=room, text="hello")
    for kind, body in (("show.chat_delete", {"message_id": line["id"]}), ("show.chat_pin", {"message_id": line["id"]}),
                       ("show.mute", {"user": "ben", "minutes": 1}), ("show.kick", {"user": "ben"})):
        assert (await ann.request(kind, room=room, **body))["code"] == "forbidden"
    assert (await mod.request("show.kick", room=room, user="host"))["code"] == "forbidden"
    assert (await mod.request("show.mute", room=room, user="ben", minutes=0))["code"] == "bad_message"
    assert (await mod.request("show.mute", room=room, user="ben", minutes=True))["code"] == "bad_message"
    assert (await mod.request("show.chat_pin", room=room, message_id="1"))["code"] == "bad_message"
    assert (await ben.ok("show.chat", room=room, text="still here"))["id"] == line["id"] + 1
