"""Blocks hold inside a show, both ways: two members with a block between them never see each other
in the roster nor each other's chat; a block with the owner, made live, removes the other. On one
Redis and on a 3-master Redis Cluster (the join's block check is one script call on both)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from signaling.relations import Relations
from switchboard.ids import UserId
from switchboard.keyspace import blocks
from switchboard.redis_client import is_cluster
from tests.conftest import REDIS_KINDS, redis_url_of
from tests.signaling.conftest import Node, Peer
from tests.signaling.test_blocks import block


@pytest.fixture(params=REDIS_KINDS)
def redis_url(request: pytest.FixtureRequest) -> str:
    return redis_url_of(request)


def users(n: int) -> list[str]:
    return [f"s{uuid.uuid4().hex[:10]}" for _ in range(n)]


async def settle(*peers: Peer) -> None:
    """Every frame sent so far has arrived (a ping's reply comes after them)."""
    for peer in peers:
        await peer.ok("ping")


def chat_lines(peer: Peer) -> list[tuple[str, str]]:
    return [(m["from"], m["text"]) for m in peer.seen if m["type"] == "show.chat"]


def last_roster(peer: Peer) -> list[str]:
    return [m for m in peer.seen if m["type"] == "show.roster"][-1]["roster"]


async def test_blocked_members_neither_see_nor_hear_each_other(node: Node, token: Callable[..., str],
                                                               redis: Any) -> None:
    owner, a, b, c = users(4)
    room = f"show-{uuid.uuid4().hex[:8]}"
    host = await node.connect(token(owner, room, publish=True, subscribe=True, verified=True))
    await host.ok("show.create")
    await block(redis, a, b, notice=False, both_sets=False)  # made before: only a's set says so
    pa = await node.connect(token(a, room, subscribe=True, verified=True))
    joined_a = await pa.ok("show.join", room=room)
    pb = await node.connect(token(b, room, subscribe=True, verified=True))
    joined_b = await pb.ok("show.join", room=room)
    pc = await node.connect(token(c, room, subscribe=True, verified=True))
    await pc.ok("show.join", room=room)
    assert a not in joined_b["roster"] and owner in joined_b["roster"]
    assert b not in (await pa.ok("show.roster", room=room))["roster"]
    assert owner in joined_a["roster"]
    await pa.ok("show.chat", room=room, text="from a")
    await pb.ok("show.chat", room=room, text="from b")
    await settle(host, pa, pb, pc)
    assert (b, "from b") not in chat_lines(pa)
    assert (a, "from a") not in chat_lines(pb)
    assert {(a, "from a"), (b, "from b")} <= set(chat_lines(pc)) and {(a, "from a"), (b, "from b")} <= set(
        chat_lines(host))
    assert b not in last_roster(pa) and a not in last_roster(pb)
    assert {owner, a, b, c} == set(last_roster(pc))


async def test_a_live_block_keeps_two_viewers_apart_and_an_owners_block_removes(node: Node, token: Callable[..., str],
                                                                              redis: Any) -> None:
    owner, a, b = users(3)
    room = f"show-{uuid.uuid4().hex[:8]}"
    host = await node.connect(token(owner, room, publish=True, subscribe=True, verified=True))
    await host.ok("show.create")
    pa = await node.connect(token(a, room, subscribe=True, verified=True))
    await pa.ok("show.join", room=room)
    pb = await node.connect(token(b, room, subscribe=True, verified=True))
    await pb.ok("show.join", room=room)
    await pa.ok("show.chat", room=room, text="hello all")
    assert (await pb.expect("show.chat"))["text"] == "hello all"
    await block(redis, b, a)  # viewer b blocks viewer a, live
    async with asyncio.timeout(20):  # the notice crosses Redis pub/sub: bounded, not timed
        while a in last_roster(pb):
            await pb.ok("ping")
            await asyncio.sleep(0.02)
    await pa.ok("show.chat", room=room, text="are you there?")
    await settle(host, pb)
    assert (a, "are you there?") not in chat_lines(pb) and (a, "are you there?") in chat_lines(host)
    # The owner blocks a: a is out of the show, with nothing that names a block.
    await block(redis, owner, a)
    ended = await pa.expect("show.ended", room=room)
    assert ended["reason"] == "removed"
    assert (await pa.request("show.chat", room=room, text="still?"))["code"] == "not_found"
    async with asyncio.timeout(20):
        while a in last_roster(host):
            await host.ok("ping")
            await asyncio.sleep(0.02)
    assert (await host.ok("show.roster", room=room))["roster"] == [owner, b]


async def test_a_joiner_is_kept_apart_from_members_it_blocks_and_members_that_block_it(
        node: Node, token: Callable[..., str], redis: Any) -> None:
    """The join reads both sides for every member: a member the joiner's own set names, and a member
    whose set names the joiner, are both kept apart; the others (more than one, so the check runs over
    many members at once) see the joiner."""
    owner, joiner, blocked_by_joiner, blocker, *others = users(7)
    room = f"show-{uuid.uuid4().hex[:8]}"
    host = await node.connect(token(owner, room, publish=True, subscribe=True, verified=True))
    await host.ok("show.create")
    members = {}
    for user in (blocked_by_joiner, blocker, *others):
        members[user] = await node.connect(token(user, room, subscribe=True, verified=True))
        await members[user].ok("show.join", room=room)
    await block(redis, joiner, blocked_by_joiner, notice=False, both_sets=False)  # the joiner's set only
    await block(redis, blocker, joiner, notice=False, both_sets=False)  # the member's set only
    pj = await node.connect(token(joiner, room, subscribe=True, verified=True))
    joined = await pj.ok("show.join", room=room)
    assert blocked_by_joiner not in joined["roster"] and blocker not in joined["roster"]
    assert {owner, joiner, *others} <= set(joined["roster"])
    await settle(host, pj, *members.values())
    assert joiner not in last_roster(members[blocked_by_joiner]) and joiner not in last_roster(members[blocker])
    assert all(joiner in last_roster(members[u]) for u in others)


def holder(redis: Any, key: str) -> dict[str, Any]:
    """The keyword that sends a command to the Redis holding ``key`` (on a cluster: its slot's master)."""
    return {"target_nodes": redis.get_node_from_key(key)} if is_cluster(redis) else {}


async def test_the_joins_block_check_is_one_script_call_on_one_redis_and_on_a_cluster(redis: Any) -> None:
    """``Relations.blocked_among`` over many members: the same answer on both kinds, read by the one
    script (every key in KEYS, one ``{mm}`` slot), not by a command per member."""
    me, mine, theirs, both, *rest = users(8)
    await block(redis, me, mine, notice=False, both_sets=False)
    await block(redis, theirs, me, notice=False, both_sets=False)
    await block(redis, me, both, notice=False)
    relations = Relations(redis)
    assert await relations.blocked_among(UserId(me), [UserId(me)]) == set()
    await relations.blocked_among(UserId(me), [UserId(rest[0])])  # the script is loaded (NOSCRIPT once)
    await redis.config_resetstat(**holder(redis, blocks(me)))
    members = [UserId(u) for u in (mine, *rest, theirs, me, both, rest[0])]
    assert await relations.blocked_among(UserId(me), members) == {mine, theirs, both}
    stats = await redis.info("commandstats", **holder(redis, blocks(me)))
    run = {name.removeprefix("cmdstat_"): int(s["calls"]) for name, s in stats.items()}
    assert run.get("evalsha") == 1, run  # its SISMEMBERs count too (Redis counts a script's commands)
    assert not {"smismember", "eval"} & set(run), run
