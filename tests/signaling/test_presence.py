"""``presence.query`` follows the product: online/offline only for friends (an accepted follow either way, as the
control API mirrors them into ``keyspace.friends``), never across a block; everyone else is always
``offline``, so a stranger cannot tell a hidden user from an absent one."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from switchboard.keyspace import blocks, friends
from tests.signaling.conftest import Node, NodeFactory, befriend


def users(n: int) -> list[str]:
    return [f"p{uuid.uuid4().hex[:10]}" for _ in range(n)]


async def test_presence_is_for_friends_only(node: Node, token: Callable[..., str], redis: Any) -> None:
    me, friend, away, stranger, one_way, fan = users(6)
    await befriend(redis, me, friend, away)
    await redis.sadd(friends(me), one_way)  # a half-written mirror is not a friendship
    await redis.sadd(friends(fan), me)
    pm = await node.connect(token(me))
    others = {u: await node.connect(token(u)) for u in (friend, stranger, one_way, fan)}
    reply = await pm.ok("presence.query", users=[friend, away, stranger, one_way, fan, me])
    assert reply["presence"] == {friend: "online", away: "offline", stranger: "offline", one_way: "offline",
                                 fan: "offline", me: "online"}
    # None of them but the friend sees me, though I am online.
    for other, peer in others.items():
        seen = (await peer.ok("presence.query", users=[me]))["presence"][me]
        assert seen == ("online" if other == friend else "offline")


async def test_strangers_and_blocked_users_see_offline(make_node: NodeFactory, token: Callable[..., str],
                                                       redis: Any) -> None:
    one, two = await make_node(), await make_node()
    me, friend, stranger = users(3)
    await befriend(redis, me, friend)
    pm, pf, ps = await one.connect(token(me)), await two.connect(token(friend)), await two.connect(token(stranger))
    assert (await ps.ok("presence.query", users=[me, friend]))["presence"] == {me: "offline", friend: "offline"}
    assert (await pf.ok("presence.query", users=[me]))["presence"] == {me: "online"}  # across nodes
    await redis.sadd(blocks(friend), me)  # the friend blocks me (the API also drops the follows; not yet here)
    assert (await pm.ok("presence.query", users=[friend]))["presence"] == {friend: "offline"}
    assert (await pf.ok("presence.query", users=[me]))["presence"] == {me: "offline"}
    await redis.srem(blocks(friend), me)
    assert (await pm.ok("presence.query", users=[friend]))["presence"] == {friend: "online"}
    await pf.ws.close()
