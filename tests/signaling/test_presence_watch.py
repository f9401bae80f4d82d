"""``presence.watch``: the status now, then ``presence.changed`` pushed to the watching sessions of
friends only (an accepted follow either way, no block), across nodes, for arrivals, departures and calls."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable
from typing import Any

from switchboard.keyspace import SANCTIONS_CHANNEL, blocks, presence
from tests.signaling.conftest import SETTINGS, Node, NodeFactory, Peer, befriend


def users(n: int) -> list[str]:
    return [f"w{uuid.uuid4().hex[:10]}" for _ in range(n)]


def pushes(peer: Peer, about: str) -> list[str]:
    return [m["status"] for m in peer.seen if m["type"] == "presence.changed" and m["user"] == about]


async def test_watch_pushes_changes_to_friends_only(make_node: NodeFactory, token: Callable[..., str],
                                                    redis: Any) -> None:
    # A socket that drops leaves its session for the resume window: keep it short, to see "offline".
    one, two = await make_node(), await make_node(dataclasses.replace(SETTINGS, resume_window_s=1))
    me, friend, other, stranger, fan = users(5)
    await befriend(redis, me, friend)
    await befriend(redis, friend, other)
    await befriend(redis, fan, stranger)  # friends of each other, not of me
    pm = await one.connect(token(me))
    reply = await pm.ok("presence.watch", users=[friend, stranger, me])
    assert reply["presence"] == {friend: "offline", stranger: "offline", me: "online"}
    # A stranger watching me learns nothing, now or later.
    ps = await two.connect(token(stranger))
    assert (await ps.ok("presence.watch", users=[me, friend]))["presence"] == {me: "offline", friend: "offline"}
    await two.connect(token(fan))  # the stranger's friend arrives: pushed to the stranger, who does not watch them

    pf = await two.connect(token(friend))  # on the other node
    assert (await pm.expect("presence.changed", user=friend))["status"] == "online"
    assert (await pf.ok("presence.watch", users=[me]))["presence"] == {me: "online"}

    # A call: the friend is in a call for me (ringing, then accepted), online again after it.
    po = await two.connect(token(other))
    call_id = (await pf.ok("call.invite", to=other))["call_id"]
    await po.expect("call.incoming", call_id=call_id)
    await po.ok("call.accept", call_id=call_id)
    assert (await pm.expect("presence.changed", user=friend))["status"] == "in_call"
    assert (await pm.ok("presence.watch", users=[friend]))["presence"] == {friend: "in_call"}
    await pf.ok("call.hangup", call_id=call_id)
    assert (await pm.expect("presence.changed", user=friend))["status"] == "online"
    assert (await pm.ok("presence.watch", users=[friend]))["presence"] == {friend: "online"}

    await pf.ws.close()  # the session ends when the resume window passes
    assert (await pm.expect("presence.changed", user=friend))["status"] == "offline"
    await pm.ok("ping")
    await ps.ok("ping")
    assert not [m for m in ps.seen if m["type"] == "presence.changed"]  # never the stranger
    assert pushes(pm, stranger) == [] and pushes(pm, other) == []  # the friend's friend is not mine


async def test_no_push_across_a_block_nor_to_sessions_not_watching(make_node: NodeFactory,
                                                                    token: Callable[..., str], redis: Any) -> None:
    node = await make_node()
    me, friend, watched = users(3)
    await befriend(redis, me, friend, watched)
    pm = await node.connect(token(me))
    idle = await node.connect(token(me))  # my second tab, which watches nobody
    await pm.ok("presence.watch", users=[friend, watched])
    await redis.sadd(blocks(friend), me)
    await node.connect(token(friend))  # blocked: no push, and the reply reads offline
    assert (await pm.ok("presence.watch", users=[friend]))["presence"] == {friend: "offline"}
    await pm.ok("presence.watch", users=[friend, watched])
    await node.connect(token(watched))
    assert (await pm.expect("presence.changed", user=watched))["status"] == "online"
    await pm.ok("ping")
    await idle.ok("ping")
    assert pushes(pm, friend) == []
    assert not [m for m in idle.seen if m["type"] == "presence.changed"]


async def test_a_block_shows_each_side_the_other_offline_at_once(node: Node, token: Callable[..., str],
                                                                 redis: Any) -> None:
    me, friend = users(2)
    await befriend(redis, me, friend)
    pm, pf = await node.connect(token(me)), await node.connect(token(friend))
    assert (await pm.ok("presence.watch", users=[friend]))["presence"] == {friend: "online"}
    assert (await pf.ok("presence.watch", users=[me]))["presence"] == {me: "online"}
    await redis.sadd(blocks(friend), me)  # what the control API writes, then announces
    await redis.sadd(blocks(me), friend)
    await redis.publish(SANCTIONS_CHANNEL, json.dumps({"user": friend, "kind": "block", "other": me}))
    await pm.expect("presence.changed", user=friend, status="offline")
    await pf.expect("presence.changed", user=me, status="offline")


async def test_a_hidden_moderator_is_never_shown(make_node: NodeFactory, token: Callable[..., str],
                                                redis: Any) -> None:
    """A moderator's hidden socket (the console's) is no presence: their friends read ``offline`` and
    get no push, on this node or another; a plain socket of theirs shows them as usual, and when it
    goes while the hidden one stays, they go ``offline``."""
    one, two = await make_node(), await make_node(dataclasses.replace(SETTINGS, resume_window_s=1))
    me, mod = users(2)
    await befriend(redis, me, mod)
    pm = await one.connect(token(me))
    assert (await pm.ok("presence.watch", users=[mod]))["presence"] == {mod: "offline"}
    console = await two.connect(token(mod, "moderation", hidden=True, moderate=True, subscribe=True))
    await console.ok("ping")
    assert (await pm.ok("presence.watch", users=[mod]))["presence"] == {mod: "offline"}
    assert (await pm.ok("presence.query", users=[mod]))["presence"] == {mod: "offline"}
    assert not await redis.exists(presence(mod))
    page = await two.connect(token(mod))  # the moderator's own page, as any user
    assert (await pm.expect("presence.changed", user=mod))["status"] == "online"
    assert (await pm.ok("presence.watch", users=[mod]))["presence"] == {mod: "online"}
    await page.ws.close()  # its session ends when the resume window passes; the console stays
    assert (await pm.expect("presence.changed", user=mod))["status"] == "offline"
    assert (await pm.ok("presence.watch", users=[mod]))["presence"] == {mod: "offline"}
    await console.ok("ping")  # still there, still unseen
    assert pushes(pm, mod) == []
