"""The call lease (signaling/call_lease.py) on the real Redis: records renewed while a node holds a
party; a far party whose node left the registry gets ``rejoin_s`` to come back, then the call ends with
``node_lost``; a paid call whose meter's node died ends at once; a lone node ends nothing."""

from __future__ import annotations

import time
from typing import Any

import pytest

from signaling.call_lease import LEASE_S, MEDIA_FIELD, NODE_LOST, CallLease
from switchboard.ids import NodeId, UserId, new_id
from switchboard.keyspace import call, match_nodes, match_pair, user_call
from switchboard.registry import NodeEntry, NodeRegistry
from tests.conftest import REDIS_KINDS, redis_url_of


@pytest.fixture(params=REDIS_KINDS)
def redis_url(request: pytest.FixtureRequest) -> str:
    return redis_url_of(request)


class Ends:
    """The call book's end, recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def __call__(self, call_id: str, reason: str) -> bool:
        self.calls.append((call_id, reason))
        return True


async def _setup(redis: Any, far: str, **fields: str) -> tuple[NodeRegistry, NodeId, str, UserId, UserId]:
    """A registered node ``here``, an active call between its user and one on ``far``."""
    registry = NodeRegistry(redis)
    here = NodeId(new_id("node_"))
    await registry.announce(NodeEntry(id=here, url="http://127.0.0.1:1", media_address=""), 30)
    call_id, caller, callee = new_id("call_"), UserId(new_id("u_")), UserId(new_id("u_"))
    await redis.hset(call(call_id), mapping={"caller": caller, "callee": callee, "state": "active",
                                             "caller_node": here, "callee_node": far, **fields})
    await redis.set(user_call(caller), call_id, ex=3600)
    await redis.set(user_call(callee), call_id, ex=3600)
    return registry, here, call_id, caller, callee


async def test_a_far_party_whose_node_died_has_the_rejoin_window_then_the_call_ends(redis: Any) -> None:
    registry, here, call_id, caller, callee = await _setup(redis, "node_gone")
    ends = Ends()
    lease = CallLease(redis, here, registry, 3600.0, ends, unseen_s=0.0)
    lease.hold(call_id, caller, callee)
    await lease.tick()
    assert ends.calls == []  # within the window: the party may still come back
    assert 0 < await redis.ttl(call(call_id)) <= LEASE_S  # renewed for the lease, not for hours
    assert 0 < await redis.ttl(user_call(callee)) <= LEASE_S
    lease.rejoin_s = 0.0
    await lease.tick()
    assert ends.calls == [(call_id, NODE_LOST)]


async def test_a_far_party_back_on_a_live_node_keeps_the_call(redis: Any) -> None:
    there = NodeId(new_id("node_"))
    registry, here, call_id, caller, callee = await _setup(redis, there)
    await registry.announce(NodeEntry(id=there, url="http://127.0.0.1:2", media_address=""), 30)
    ends = Ends()
    lease = CallLease(redis, here, registry, 0.0, ends, unseen_s=0.0)
    lease.hold(call_id, caller, callee)
    await lease.tick()
    assert ends.calls == [] and call_id in lease.held


async def test_a_paid_call_whose_meter_node_died_ends_at_once(redis: Any) -> None:
    registry, here, call_id, caller, callee = await _setup(redis, "node_gone", meter_node="node_gone")
    ends = Ends()
    lease = CallLease(redis, here, registry, 3600.0, ends, unseen_s=0.0)
    lease.hold(call_id, caller, callee)
    await lease.tick()
    assert ends.calls == [(call_id, NODE_LOST)]


async def test_an_ended_call_leaves_the_lease_and_a_lone_node_ends_nothing(redis: Any) -> None:
    _, here, call_id, caller, callee = await _setup(redis, "node_gone")
    ends = Ends()
    lease = CallLease(redis, here, None, 0.0, ends, unseen_s=0.0)  # switchboard up: no registry
    lease.hold(call_id, caller, callee)
    await lease.tick()
    assert ends.calls == [] and call_id in lease.held
    await redis.hset(call(call_id), "state", "ended")
    await lease.tick()
    assert call_id not in lease.held


async def test_a_node_just_out_of_the_registry_is_not_gone_yet(redis: Any) -> None:
    """One that just started takes sockets a heartbeat before it registers: not a dead meter yet."""
    registry, here, call_id, caller, callee = await _setup(redis, "node_new", meter_node="node_new")
    ends = Ends()
    lease = CallLease(redis, here, registry, 3600.0, ends, unseen_s=3600.0)
    lease.hold(call_id, caller, callee)
    await lease.tick()
    assert ends.calls == []


async def test_a_match_whose_peer_node_is_gone_ends_with_node_lost(redis: Any) -> None:
    registry = NodeRegistry(redis)
    here = NodeId(new_id("node_"))
    await registry.announce(NodeEntry(id=here, url="http://127.0.0.1:1", media_address=""), 30)
    parted: list[tuple[str, str, str]] = []

    async def part(a: UserId, b: UserId, reason: str) -> bool:
        parted.append((a, b, reason))
        return True

    lease = CallLease(redis, here, registry, 3600.0, Ends(), unseen_s=0.0)
    lease.end_match = part
    sid, kim, lou = new_id("mm_"), UserId(new_id("u_")), UserId(new_id("u_"))
    await redis.set(match_pair(kim), sid)  # what the matchmaker's pairing wrote
    await lease.hold_match(sid, kim, lou, "sfu")
    assert await redis.hget(match_nodes(sid), MEDIA_FIELD) == b"sfu"  # for a party that rejoins elsewhere
    await lease.tick()
    assert parted == []  # the peer's node wrote nothing yet (or is an older node): nothing to judge
    await redis.hset(match_nodes(sid), lou, here)
    await lease.tick()
    assert parted == []  # the peer's node is alive
    await redis.hset(match_nodes(sid), lou, "node_gone")
    await lease.tick()
    assert parted == [] and sid in lease.matches  # the peer has node.call_rejoin_s to come back
    await redis.hset(match_nodes(sid), lou, here)  # lou rejoined on a live node (call.rejoin)
    await lease.tick()
    assert parted == [] and sid in lease.matches
    lease.rejoin_s = 0.0  # no window: the next loss ends it at once
    await redis.hset(match_nodes(sid), lou, "node_gone")
    await lease.tick()
    assert parted == [(kim, lou, NODE_LOST)] and sid not in lease.matches


async def test_a_match_the_party_here_left_leaves_the_watch(redis: Any) -> None:
    """``queue.leave``/``next`` by the party here tells only the peer: the pair key says it ended."""
    lease = CallLease(redis, NodeId(new_id("node_")), None, 0.0, Ends(), unseen_s=0.0)

    async def part(a: UserId, b: UserId, reason: str) -> bool:
        raise AssertionError("nothing to end")

    lease.end_match = part
    sid, kim, lou = new_id("mm_"), UserId(new_id("u_")), UserId(new_id("u_"))
    await redis.set(match_pair(kim), sid)
    await lease.hold_match(sid, kim, lou, "p2p")
    await lease.tick()
    assert sid in lease.matches
    await redis.delete(match_pair(kim))
    await lease.tick()
    assert sid not in lease.matches


async def test_a_lease_whose_clock_runs_ahead_keeps_a_call_whose_far_node_heartbeats(
        redis: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Liveness is the registry entry's TTL (the Redis server's clock), not this node's clock."""
    there = NodeId(new_id("node_"))
    registry, here, call_id, caller, callee = await _setup(redis, there)
    await registry.announce(NodeEntry(id=there, url="http://127.0.0.1:2", media_address=""), 30)
    ahead = time.time() + 120  # this node's clock, two minutes ahead of the far node's
    monkeypatch.setattr("switchboard.registry.time.time", lambda: ahead)
    ends = Ends()
    lease = CallLease(redis, here, registry, 0.0, ends, unseen_s=0.0)
    lease.hold(call_id, caller, callee)
    await lease.tick()
    assert ends.calls == [] and call_id in lease.held
    assert there in {e.id for e in await registry.nodes()}
