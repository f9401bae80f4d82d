"""Presence along the follow graph, end to end: the control API's follow routes (Postgres, then the
Redis mirror) and real nodes' ``presence.watch`` / ``presence.changed``. An accepted follow, one way
only, shows each side to the other (what ``/space`` lists); a pending or declined request and a
stranger see nothing; a block removes it live."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

from tests.control_api.conftest import Api, aiohttp_client, conformance, make_api  # noqa: F401  (fixtures)
from tests.signaling.conftest import SETTINGS, NodeFactory, Peer


def pushes(peer: Peer, about: str) -> list[str]:
    return [m["status"] for m in peer.seen if m["type"] == "presence.changed" and m["user"] == about]


async def test_a_one_way_accepted_follow_shows_presence_both_ways(
        make_api: Callable[..., Awaitable[Api]], make_node: NodeFactory,  # noqa: F811
        token: Callable[..., str]) -> None:
    api = await make_api()
    one, two = await make_node(), await make_node(dataclasses.replace(SETTINGS, resume_window_s=1))
    a, b, asker, declined, stranger = [await api.user() for _ in range(5)]
    # a asks to follow b; b accepts without following back: one accepted edge, a -> b.
    assert (await api.call("POST", f"/users/{b.id}/follow", a))[0] == 201
    pa = await one.connect(token(a.id))
    assert (await pa.ok("presence.watch", users=[b.id]))["presence"] == {b.id: "offline"}
    pb = await two.connect(token(b.id))
    assert (await pa.ok("presence.watch", users=[b.id]))["presence"] == {b.id: "offline"}  # pending: hidden
    assert (await pb.ok("presence.watch", users=[a.id]))["presence"] == {a.id: "offline"}
    assert (await api.call("POST", f"/me/follow-requests/{a.id}/accept", b))[0] == 200
    # The follower sees the followee, and the followee the follower (both lists of /space).
    assert (await pa.ok("presence.watch", users=[b.id]))["presence"] == {b.id: "online"}
    assert (await pb.ok("presence.watch", users=[a.id]))["presence"] == {a.id: "online"}

    # Pushed both ways, across the two nodes: b leaves and comes back, a sees it; a second tab of a
    # arriving is no change for b, but a in a call is.
    await pb.ws.close()  # the session ends when the resume window passes
    assert (await pa.expect("presence.changed", user=b.id))["status"] == "offline"
    pb = await two.connect(token(b.id))
    assert (await pa.expect("presence.changed", user=b.id))["status"] == "online"
    assert (await pb.ok("presence.watch", users=[a.id]))["presence"] == {a.id: "online"}
    pc = await one.connect(token(stranger.id))
    call_id = (await pa.ok("call.invite", to=stranger.id))["call_id"]
    await pc.expect("call.incoming", call_id=call_id)
    await pc.ok("call.accept", call_id=call_id)
    assert (await pb.expect("presence.changed", user=a.id))["status"] == "in_call"
    await pa.ok("call.hangup", call_id=call_id)
    assert (await pb.expect("presence.changed", user=a.id))["status"] == "online"

    # A pending request, a declined one and a stranger: nothing, either way, now or pushed.
    assert (await api.call("POST", f"/users/{a.id}/follow", asker))[0] == 201
    assert (await api.call("POST", f"/users/{a.id}/follow", declined))[0] == 201
    assert (await api.call("POST", f"/me/follow-requests/{declined.id}/decline", a))[0] == 200
    others = [asker.id, declined.id, stranger.id]
    watchers = {u.id: await two.connect(token(u.id)) for u in (asker, declined)} | {stranger.id: pc}
    for peer in watchers.values():
        assert (await peer.ok("presence.watch", users=[a.id, b.id]))["presence"] == {a.id: "offline",
                                                                                     b.id: "offline"}
    assert (await pa.ok("presence.watch", users=[b.id, *others]))["presence"] == {
        b.id: "online", **dict.fromkeys(others, "offline")}
    a2 = await one.connect(token(a.id))  # an arrival of a's is pushed to nobody (a is online already)
    await a2.ws.close()
    await one.connect(token(declined.id))  # a second tab of theirs: no push to a

    # A block removes it live: each side's page sees the other offline, and the reply says so.
    assert (await api.call("POST", f"/users/{a.id}/block", b))[0] == 201
    await pa.expect("presence.changed", user=b.id, status="offline")
    await pb.expect("presence.changed", user=a.id, status="offline")
    assert (await pa.ok("presence.watch", users=[b.id]))["presence"] == {b.id: "offline"}
    assert (await pb.ok("presence.watch", users=[a.id]))["presence"] == {a.id: "offline"}
    for peer in (pa, pb, *watchers.values()):
        await peer.ok("ping")
    for peer in watchers.values():
        assert not [m for m in peer.seen if m["type"] == "presence.changed"]
    assert all(pushes(pa, u) == [] for u in others)
