"""Blocks hold on every door of the node, both ways: invites, accepts, the relay inside a call or a
match (ended live by the control API's ``block`` notice), presence, and the matchmaker's pairs."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

from matchmaker.store import RedisTicketStore
from switchboard.keyspace import SANCTIONS_CHANNEL, blocks, match_pair, user_call, user_channel
from tests.signaling.conftest import Node, NodeFactory, befriend
from tests.signaling.test_calls import call


def users(n: int) -> list[str]:
    return [f"b{uuid.uuid4().hex[:10]}" for _ in range(n)]


async def block(redis: Any, blocker: str, blocked: str, *, notice: bool = True, both_sets: bool = True) -> None:
    """What the control API does (control_api/social.py): the sets, then the notice."""
    await redis.sadd(blocks(blocker), blocked)
    if both_sets:
        await redis.sadd(blocks(blocked), blocker)
    if notice:
        await redis.publish(SANCTIONS_CHANNEL, json.dumps({"user": blocker, "kind": "block", "other": blocked}))


async def test_an_invite_across_a_block_looks_like_an_offline_user(node: Node, token: Callable[..., str],
                                                                   redis: Any) -> None:
    a, b, c, gone = users(4)
    pa, pb = await node.connect(token(a)), await node.connect(token(b))
    await node.connect(token(c))
    await block(redis, a, b, notice=False, both_sets=False)  # only the blocker's set: read both ways
    offline = await pa.request("call.invite", to=gone)
    for caller, callee, peer in ((pb, a, pa), (pa, b, pb)):  # the blocked one rings, and the blocker
        refused = await caller.request("call.invite", to=callee)
        assert refused["code"] == offline["code"] == "not_found"
        assert refused["message"] == offline["message"].replace(gone, callee)
        assert not [m for m in peer.seen if m["type"] == "call.incoming"]
    assert await redis.get(user_call(a)) is None and await redis.get(user_call(b)) is None
    # Neither may learn the other is busy: a busy blocked user still looks offline.
    cid = (await pb.ok("call.invite", to=c))["call_id"]
    assert (await pa.request("call.invite", to=b))["code"] == "not_found"
    await pb.ok("call.cancel", call_id=cid)
    # Anyone else is untouched.
    cid = (await pa.ok("call.invite", to=c))["call_id"]
    await pa.ok("call.cancel", call_id=cid)


async def test_a_block_during_a_call_ends_it_and_stops_the_relay(node: Node, token: Callable[..., str],
                                                                  redis: Any) -> None:
    a, b = users(2)
    pa, pb, cid = await call(node, token, a, b)
    await pa.ok("call.chat", call_id=cid, text="before")
    assert (await pb.expect("call.chat"))["text"] == "before"
    await block(redis, b, a)  # b blocks a (the callee blocks the caller)
    for peer in (pa, pb):
        ended = await peer.expect("call.ended", call_id=cid)
        assert (ended["reason"], ended["by"]) == ("hangup", b)  # as if b hung up: nothing more
    for kind, extra in (("call.chat", {"text": "still there?"}), ("call.like", {}), ("call.follow_request", {}),
                        ("call.offer", {"sdp": "v=0"}), ("call.ice", {"candidate": None})):
        assert (await pa.request(kind, call_id=cid, **extra))["code"] == "not_found"
        assert (await pb.request(kind, call_id=cid, **extra))["code"] == "not_found"
    assert (await pb.ok("ping"))["pong"] is True
    assert not [m for m in pb.seen if m["type"] == "call.chat" and m.get("text") == "still there?"]
    assert await redis.get(user_call(a)) is None and await redis.get(user_call(b)) is None
    # And no new call: either way.
    assert (await pa.request("call.invite", to=b))["code"] == "not_found"


async def test_likes_and_follow_requests_read_the_block_sets_themselves(node: Node, token: Callable[..., str],
                                                                       redis: Any) -> None:
    """If the block's notice never came (a node's pub/sub reconnecting), the durable relays still
    refuse: they read the sets (chat and media relays rely on the notice ending the call)."""
    a, b = users(2)
    pa, pb, cid = await call(node, token, a, b)
    await block(redis, a, b, notice=False, both_sets=False)
    for kind in ("call.like", "call.follow_request"):
        assert (await pb.request(kind, call_id=cid))["code"] == "not_found"
        assert (await pa.request(kind, call_id=cid))["code"] == "not_found"
    await pa.ok("ping")
    assert not [m for m in pa.seen + pb.seen if m["type"] in ("call.like", "call.follow_request")]


async def test_a_block_while_ringing_ends_the_call_and_accept_finds_nothing(node: Node, token: Callable[..., str],
                                                                              redis: Any) -> None:
    a, b = users(2)
    pa, pb = await node.connect(token(a)), await node.connect(token(b))
    cid = (await pa.ok("call.invite", to=b))["call_id"]
    await pb.expect("call.incoming", call_id=cid)
    await block(redis, a, b)
    await pa.expect("call.ended", call_id=cid)
    await pb.expect("call.ended", call_id=cid)
    assert (await pb.request("call.accept", call_id=cid))["code"] == "not_found"


async def test_accepting_a_call_from_a_blocked_user_ends_it(node: Node, token: Callable[..., str],
                                                            redis: Any) -> None:
    """The block's notice may not have arrived yet (or was lost): accept reads the sets itself."""
    a, b = users(2)
    pa, pb = await node.connect(token(a)), await node.connect(token(b))
    cid = (await pa.ok("call.invite", to=b))["call_id"]
    await pb.expect("call.incoming", call_id=cid)
    await block(redis, b, a, notice=False, both_sets=False)
    assert (await pb.request("call.accept", call_id=cid))["code"] == "not_found"
    await pa.expect("call.ended", call_id=cid)
    assert not [m for m in pa.seen if m["type"] == "call.accepted"]
    assert (await pa.request("call.chat", call_id=cid, text="hi"))["code"] == "not_found"


async def test_a_block_across_two_nodes_ends_the_call_once(make_node: NodeFactory, token: Callable[..., str],
                                                           redis: Any) -> None:
    one, two = await make_node(), await make_node()
    a, b = users(2)
    pa, pb = await one.connect(token(a)), await two.connect(token(b))
    cid = (await pa.ok("call.invite", to=b))["call_id"]
    await pb.expect("call.incoming", call_id=cid)
    await pb.ok("call.accept", call_id=cid)
    await pa.expect("call.accepted", call_id=cid)
    await block(redis, a, b)
    await pa.expect("call.ended", call_id=cid)
    await pb.expect("call.ended", call_id=cid)
    await pa.ok("ping"), await pb.ok("ping")  # anything else queued before these came in
    assert not [m for m in pa.seen + pb.seen if m["type"] == "call.ended"]  # told once, not once per node
    assert (await pb.request("call.chat", call_id=cid, text="x"))["code"] == "not_found"


async def test_a_block_during_a_match_ends_it_for_both(node: Node, token: Callable[..., str], redis: Any) -> None:
    a, b = users(2)
    pa, pb = await node.connect(token(a)), await node.connect(token(b))
    await pa.ok("queue.join", ticket={"country": "FR", "age": 30})
    await pb.ok("queue.join", ticket={"country": "FR", "age": 30})
    sid = (await pa.expect("match.found"))["session_id"]
    await pb.expect("match.found", session_id=sid)
    await pa.ok("call.chat", call_id=sid, text="hello stranger")
    await pb.expect("call.chat", text="hello stranger")
    await block(redis, a, b)
    for peer in (pa, pb):
        assert (await peer.expect("match.ended", session_id=sid))["reason"] == "leave"
    assert (await pb.request("call.chat", call_id=sid, text="wait"))["code"] == "not_found"
    assert (await pb.request("call.like", call_id=sid))["code"] == "not_found"


async def test_the_real_queue_parts_a_blocked_pair(redis: Any) -> None:
    """``RedisTicketStore.part``: ends a live pair of the two only, and tells both."""
    a, b, c = users(3)
    store = RedisTicketStore(redis, ticket_ttl_s=60)
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(user_channel(a), user_channel(b))
    try:
        await redis.set(match_pair(a), "s1"), await redis.set(match_pair(b), "s1"), await redis.set(match_pair(c), "s2")
        assert await store.part(a, c) is False  # not paired with each other: nothing happens
        assert await redis.get(match_pair(a)) == b"s1"
        assert await store.part(b, a) is True
        assert await redis.get(match_pair(a)) is None and await redis.get(match_pair(b)) is None
        told = set()
        async with asyncio.timeout(5):
            while len(told) < 2:
                item = await pubsub.get_message(timeout=1.0)
                if item is not None:
                    assert json.loads(item["data"]) == {"type": "match.ended", "session_id": "s1", "reason": "leave"}
                    told.add(item["channel"])
        assert told == {user_channel(a).encode(), user_channel(b).encode()}
        assert await store.part(a, b) is False  # twice is nothing
    finally:
        await pubsub.aclose()


async def test_a_blocked_friend_looks_offline_both_ways(node: Node, token: Callable[..., str], redis: Any) -> None:
    a, b = users(2)
    await befriend(redis, a, b)
    pa, pb = await node.connect(token(a)), await node.connect(token(b))
    assert (await pa.ok("presence.query", users=[b]))["presence"] == {b: "online"}
    await block(redis, a, b, notice=False, both_sets=False)  # only a's set holds it
    assert (await pa.ok("presence.query", users=[b]))["presence"] == {b: "offline"}
    assert (await pb.ok("presence.query", users=[a]))["presence"] == {a: "offline"}
