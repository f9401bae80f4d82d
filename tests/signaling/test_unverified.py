"""A token whose account has not verified its email (``verified`` false) may watch, but not call,
match, publish or chat: those doors answer ``forbidden`` with a message that says to verify."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from tests.signaling.conftest import Node, befriend


async def test_unverified_accounts_may_watch_but_not_call_match_publish_or_chat(
        node: Node, token: Callable[..., str], redis) -> None:  # type: ignore[no-untyped-def]
    new, host, friend = (f"u{uuid.uuid4().hex[:10]}" for _ in range(3))
    room = f"room-{new}"
    peer = await node.connect(token(new, room, publish=True, subscribe=True, verified=False))
    verified_host = await node.connect(token(host, room, publish=True))
    await verified_host.ok("show.create")
    await node.connect(token(friend))
    refusals = {
        "call.invite": {"to": friend},
        "call.accept": {"call_id": "c1"},
        "call.publish": {"call_id": "c1", "sdp": "v=0"},
        "call.chat": {"call_id": "c1", "text": "hi"},
        "call.like": {"call_id": "c1"},
        "call.follow_request": {"call_id": "c1"},
        "call.offer": {"call_id": "c1", "sdp": "v=0"},
        "queue.join": {"ticket": {"country": "FR", "age": 30}},
        "show.create": {"room": room},
        "show.publish": {"room": room, "sdp": "v=0"},
        "show.chat": {"room": room, "text": "hi"},
    }
    for kind, body in refusals.items():
        error = await peer.request(kind, **body)
        assert (error["type"], error["code"]) == ("error", "forbidden"), (kind, error)
        assert "verify your email" in error["message"]
    # Watching, presence, pings stay open.
    assert (await peer.ok("show.join", room=room))["roster"]
    assert (await peer.ok("show.subscribe", room=room))["sdp"]
    await befriend(redis, new, friend)
    assert (await peer.ok("presence.query", users=[friend]))["presence"] == {friend: "online"}
    assert (await peer.ok("ping"))["pong"] is True
    # A verified user cannot ring them into a call they could not accept either: the invite
    # rings, their accept is refused.
    caller = await node.connect(token(friend))
    cid = (await caller.ok("call.invite", to=new))["call_id"]
    await peer.expect("call.incoming", call_id=cid)
    assert (await peer.request("call.accept", call_id=cid))["code"] == "forbidden"
    # Once verified (a fresh token says so), the same doors open.
    again = await node.connect(token(new, room, publish=True, subscribe=True))
    await again.ok("show.join", room=room)
    await again.ok("show.chat", room=room, text="verified now")
    await again.ok("call.accept", call_id=cid)
