"""Placement: the selector as a pure function, and room pins on the real Redis (one Redis and the cluster)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from switchboard import keyspace, resp
from switchboard.embedded import EmbeddedRedis
from switchboard.placement import CPU_LIMIT, Placement, alternates, select
from switchboard.redis_client import open_redis
from switchboard.registry import NodeEntry, NodeRegistry
from switchboard.resp import Resp
from tests.conftest import REDIS_KINDS, redis_url_of


@pytest.fixture(params=REDIS_KINDS)
def redis_url(request: pytest.FixtureRequest) -> str:
    return redis_url_of(request)


class Fresh:
    """A new :class:`Placement` for each answer: what the registry says, without the sessions an
    earlier answer of the same placement sent (see the burst test)."""

    def __init__(self, redis: Any) -> None:
        self._redis = redis

    async def for_room(self, room: str, **kw: Any) -> NodeEntry | None:
        return await Placement(self._redis).for_room(room, **kw)

    async def for_session(self, **kw: Any) -> NodeEntry | None:
        return await Placement(self._redis).for_session(**kw)


def node(i: str, **kw: Any) -> NodeEntry:
    return NodeEntry(id=i, url=f"http://{i}:1", media_address="10.0.0.1", **kw)


def test_least_loaded_within_region_never_draining() -> None:
    a, b = node("a", cpu=0.5, region="eu"), node("b", cpu=0.2, region="us")
    c, d = node("c", cpu=0.1, region="eu", draining=True), node("d", cpu=0.3, region="eu")
    assert select([a, b, c, d]) == b
    assert select([a, b, c, d], region="eu") == d  # c is lighter but draining
    assert select([a, b, c, d], region="ap") == b  # nobody there: any region
    assert select([a, b, c, d], exclude={"b"}) == d
    assert select([c]) is None and select([]) is None
    # CPU first, then sessions, then rooms, then id: equal loads always pick the same node.
    assert select([node("y", viewers=3), node("x", viewers=3), node("z", viewers=1)]).id == "z"  # type: ignore[union-attr]
    assert select([node("y"), node("x")]).id == "x"  # type: ignore[union-attr]
    hot = node("hot", cpu=CPU_LIMIT + 0.05, region="eu")
    assert select([hot, node("far", cpu=0.5, region="us")], region="eu").id == "far"  # type: ignore[union-attr]
    assert select([hot]) == hot  # above the limit everywhere: still placed


def test_an_entry_round_trips_and_ignores_unknown_fields() -> None:
    entry = node("n1", region="eu", workers=2, cpu=0.25, viewers=7, rooms=1, started_ms=5)
    assert NodeEntry.from_json(entry.to_json()) == entry
    assert NodeEntry.from_json(entry.to_json()[:-1] + ',"future":1}') == entry
    with pytest.raises(ValueError):
        NodeEntry(id="", url="u", media_address="")


async def test_rooms_stay_on_their_node_and_move_when_it_is_gone(redis: Any) -> None:
    registry, placement = NodeRegistry(redis), Placement(redis)
    assert await placement.for_room("show-1") is None  # no node: the all-in-one answers itself
    await registry.announce(node("a", cpu=0.1), ttl_s=30)
    await registry.announce(node("b", cpu=0.5), ttl_s=30)
    assert (await placement.for_room("show-1")).id == "a"  # type: ignore[union-attr]
    await registry.announce(node("a", cpu=0.8), ttl_s=30)  # a got busy: new rooms go to b...
    assert (await placement.for_room("show-2")).id == "b"  # type: ignore[union-attr]
    assert (await placement.for_room("show-1")).id == "a"  # type: ignore[union-attr]  # ...its show stays
    assert (await placement.for_session()).id == "b"  # type: ignore[union-attr]
    await registry.withdraw("a")
    assert (await placement.for_room("show-1")).id == "b"  # type: ignore[union-attr]
    assert await redis.get(keyspace.room_node("show-1")) == b"b"
    assert [e.id for e in await registry.nodes()] == ["b"]
    # A draining origin: its room goes where the drain sends its clients (the selector's choice).
    await registry.announce(node("c", cpu=0.3), ttl_s=30)
    await registry.announce(node("b", cpu=0.5, draining=True), ttl_s=30)
    assert (await placement.for_room("show-1")).id == "c"  # type: ignore[union-attr]
    assert (await placement.for_room("show-1")).id == "c"  # type: ignore[union-attr]


async def test_a_dead_origins_clients_all_move_to_one_node(redis: Any) -> None:
    """When a show's node dies, all its clients ask at once. A request that read the dead pin before
    another moved the room, and whose own selection differs (the load changed between them), follows
    the room to the node already chosen instead of moving it again: the show's clients meet on one node."""
    registry = NodeRegistry(redis)
    await registry.announce(node("a", cpu=0.1), ttl_s=30)
    await registry.announce(node("b", cpu=0.5), ttl_s=30)
    await redis.set(keyspace.room_node("show-9"), "dead", ex=30)  # pinned to a node the registry forgot
    early, late = Placement(redis), Placement(redis)

    class ReadBeforeTheMove:
        async def get(self, key: str) -> bytes:
            return b"dead"

    async def b_lighter() -> list[NodeEntry]:  # what the registry said a heartbeat later
        return [node("a", cpu=0.6), node("b", cpu=0.2)]

    late._redis = ReadBeforeTheMove()  # type: ignore[assignment]
    late.registry.nodes = b_lighter  # type: ignore[method-assign]
    assert (await early.for_room("show-9")).id == "a"  # type: ignore[union-attr]
    assert (await late.for_room("show-9")).id == "a"  # type: ignore[union-attr]
    assert await redis.get(keyspace.room_node("show-9")) == b"a"


async def test_an_entry_that_is_not_refreshed_expires(redis: Any) -> None:
    registry = NodeRegistry(redis)
    await registry.announce(node("short"), ttl_s=3)
    assert 0 < await redis.pttl(keyspace.node_entry("short")) <= 3000
    await redis.delete(keyspace.node_entry("short"))  # what the TTL does to a killed node's entry
    assert await registry.nodes() == []
    assert await redis.zcard(keyspace.NODES) == 0  # the id leaves the index with its entry


async def test_the_control_apis_lean_client_reads_and_prunes_the_registry(redis_server: EmbeddedRedis) -> None:
    """The control API places sessions through :class:`switchboard.resp.Resp` (a single Redis; a
    cluster URL reads through redis-py)."""
    redis, lean = open_redis(redis_server.url), Resp(redis_server.url)
    try:
        await redis.flushdb()
        registry = NodeRegistry(lean)  # type: ignore[arg-type]
        await NodeRegistry(redis).announce(node("lean"), ttl_s=30)
        await NodeRegistry(redis).announce(node("gone"), ttl_s=30)
        await redis.delete(keyspace.node_entry("gone"))
        assert [e.id for e in await registry.nodes()] == ["lean"]
        assert await redis.zrange(keyspace.NODES, 0, -1) == [b"lean"]
    finally:
        await lean.aclose()
        await redis.aclose()


async def test_a_full_origin_sends_its_shows_further_viewers_to_an_edge(redis: Any) -> None:
    """``cascade.viewers_per_node``: once the origin holds its cap of sessions, a viewer's token names
    another node (which pulls the show from the origin); the broadcaster's still names the origin, and
    the room stays pinned to it."""
    registry = NodeRegistry(redis)
    placement = Fresh(redis)  # the registry's counts alone: no count of this test's own placements
    await registry.announce(node("a", cpu=0.1, viewer_cap=2, viewers=1), ttl_s=30)
    await registry.announce(node("b", cpu=0.5, viewer_cap=2), ttl_s=30)
    await registry.announce(node("c", cpu=0.4, viewer_cap=2, viewers=2), ttl_s=30)  # full too
    assert (await placement.for_room("show-1")).id == "a"  # type: ignore[union-attr]
    assert (await placement.for_room("show-1", viewer=True)).id == "a"  # type: ignore[union-attr]
    await registry.announce(node("a", cpu=0.1, viewer_cap=2, viewers=2), ttl_s=30)
    assert (await placement.for_room("show-1", viewer=True)).id == "b"  # type: ignore[union-attr]
    assert (await placement.for_room("show-1")).id == "a"  # type: ignore[union-attr]  # the broadcaster
    assert await redis.get(keyspace.room_node("show-1")) == b"a"
    await registry.announce(node("b", cpu=0.5, viewer_cap=2, viewers=2), ttl_s=30)
    assert (await placement.for_room("show-1", viewer=True)).id == "a"  # type: ignore[union-attr]  # all full, a tie


async def test_a_burst_of_viewers_spreads_over_the_nodes_between_heartbeats(redis: Any) -> None:
    """The viewers of a killed edge all ask within a second, before any heartbeat counts them: each
    placement counts the sessions it sent a node since that node's heartbeat, so the edge with room
    fills to its cap and then, every node full, they go to the node with the fewest for its cap (the
    origin on a tie) in turn, not all to one node."""
    registry, placement = NodeRegistry(redis), Placement(redis)
    await registry.announce(node("o", cpu=0.1, viewer_cap=10, viewers=10, updated_ms=1), ttl_s=30)
    await registry.announce(node("e", cpu=0.3, viewer_cap=10, viewers=8, updated_ms=1), ttl_s=30)
    await placement.for_room("show-1")  # the broadcaster: pinned to o (11 for its cap of 10)
    got = [(await placement.for_room("show-1", viewer=True)).id for _ in range(8)]  # type: ignore[union-attr]
    assert got == ["e", "e", "e", "o", "e", "o", "e", "o"]  # e fills up (10), then the fewer for its cap
    # e's next heartbeat counts what it got (here 2 of the 5 connected): the count starts again from it.
    await registry.announce(node("e", cpu=0.3, viewer_cap=10, viewers=10, updated_ms=2), ttl_s=30)
    assert (await placement.for_room("show-1", viewer=True)).id == "e"  # type: ignore[union-attr]  # 10/10 vs 14/10


async def test_a_client_that_lost_its_node_is_not_sent_back_while_the_registry_lists_it(redis: Any) -> None:
    """``avoid``: a client whose connect to its lost node failed names it. A viewer's edge or a
    session's node is then chosen among the others; a broadcaster that lost its show's origin moves
    the room at once; a viewer's word alone never moves a show off its origin."""
    registry = NodeRegistry(redis)
    placement = Fresh(redis)  # the registry's counts alone: no count of this test's own placements
    await registry.announce(node("o", cpu=0.1, viewer_cap=1, viewers=1), ttl_s=30)
    await registry.announce(node("dead", cpu=0.2, viewer_cap=5), ttl_s=30)  # killed: still listed
    await registry.announce(node("e", cpu=0.6, viewer_cap=5), ttl_s=30)
    assert (await placement.for_room("show-1")).id == "o"  # type: ignore[union-attr]
    assert (await placement.for_room("show-1", viewer=True)).id == "dead"  # type: ignore[union-attr]
    assert (await placement.for_room("show-1", viewer=True, avoid="dead")).id == "e"  # type: ignore[union-attr]
    assert (await placement.for_session()).id == "o"  # type: ignore[union-attr]
    assert (await placement.for_session(avoid="o")).id == "dead"  # type: ignore[union-attr]
    assert (await placement.for_room("show-1", viewer=True, avoid="o")).id != "o"  # type: ignore[union-attr]
    await registry.announce(node("o", cpu=0.1, viewer_cap=5, viewers=1), ttl_s=30)  # room on o again
    assert (await placement.for_room("show-1", viewer=True, avoid="o")).id == "o"  # type: ignore[union-attr]
    assert await redis.get(keyspace.room_node("show-1")) == b"o"
    assert (await placement.for_room("show-1", avoid="o")).id == "dead"  # type: ignore[union-attr]  # broadcaster
    assert await redis.get(keyspace.room_node("show-1")) == b"dead"
    assert (await placement.for_room("show-1", viewer=True)).id == "dead"  # type: ignore[union-attr]  # followed


async def test_a_look_leaves_in_one_write_with_its_callers_commands(redis_server: EmbeddedRedis,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The token routes read a room's placement alongside their own reads: the look's commands
    (registry index, the room's pin) are queued at once, so they leave in the same write as what the
    caller queues in that loop pass (one write and one read per request, not one per look task)."""
    # One Redis (the lean client's kind; a cluster URL reads through redis-py).
    redis, lean = open_redis(redis_server.url), Resp(redis_server.url)
    writes: list[int] = []
    flush = resp._Protocol._flush

    def counted(self: Any) -> None:
        writes.append(len(self.out))
        flush(self)

    try:
        await redis.flushdb()
        await lean.get("warm")  # connected
        await NodeRegistry(redis).announce(node("n1"), 30)
        await redis.set(keyspace.room_node("r1"), "n1")
        monkeypatch.setattr(resp._Protocol, "_flush", counted)
        placement = Placement(redis, reads=lean)
        look = asyncio.ensure_future(placement.look("r1"))
        assert await lean.hgetall("live:r1") == {}  # the route's own read, queued in the same pass
        entries, pinned = await look
        assert [e.id for e in entries] == ["n1"] and pinned == b"n1"
        # 3 commands in one write (ZRANGE, GET pin, HGETALL); then the entries' MGET.
        assert writes == [3, 1]
    finally:
        await lean.aclose()
        await redis.aclose()


async def test_a_node_two_users_reported_lost_is_skipped_for_all_until_its_next_heartbeat(redis: Any) -> None:
    """The first viewers of a killed edge to find it dead name it; once two users the API placed there
    did, no API process (the verdict is kept in Redis) places anybody there while its entry is the one
    seen then (a killed node writes no newer one). A live node wrongly reported comes back with its
    next heartbeat."""
    registry, placement, other_api = NodeRegistry(redis), Placement(redis), Placement(redis)
    await registry.announce(node("o", cpu=0.1, viewer_cap=10, viewers=10, updated_ms=1), ttl_s=30)
    await registry.announce(node("dead", cpu=0.2, viewer_cap=10, viewers=12, updated_ms=1), ttl_s=30)
    await registry.announce(node("e", cpu=0.3, viewer_cap=10, viewers=12, updated_ms=1), ttl_s=30)
    await placement.for_room("show-1")  # the broadcaster: pinned to o
    dead = next(n for n in await registry.nodes() if n.id == "dead")
    for reporter in ("stranger-1", "stranger-2"):  # never placed on dead: not counted
        got = (await placement.for_room("show-1", viewer=True, avoid="dead", reporter=reporter)).id  # type: ignore[union-attr]
        assert got != "dead"
    assert not any(n.suspected for n in await registry.nodes())
    for reporter in ("user-1", "user-2"):
        await placement.record(reporter, [dead])
    for reporter in ("user-1", "user-2"):
        got = (await placement.for_room("show-1", viewer=True, avoid="dead", reporter=reporter)).id  # type: ignore[union-attr]
        assert got != "dead"
    got = [(await other_api.for_room("show-1", viewer=True)).id for _ in range(6)]  # type: ignore[union-attr]
    assert "dead" not in got and set(got) == {"o", "e"}  # without the reports: dead had the fewest for its cap
    assert (await other_api.for_session()).id == "o"  # type: ignore[union-attr]  # sessions skip it too
    await registry.announce(node("dead", cpu=0.2, viewer_cap=10, viewers=12, updated_ms=2), ttl_s=30)  # alive
    got = [(await placement.for_room("show-1", viewer=True)).id for _ in range(6)]  # type: ignore[union-attr]
    assert "dead" in got


def test_alternates_prefer_nodes_below_the_cpu_limit_and_not_full_then_the_region() -> None:
    """A lost node's clients go first where placement would send them: not full, below the CPU limit."""
    cool, full = node("cool", cpu=0.2, region="us"), node("full", cpu=0.1, viewer_cap=2, viewers=2, region="eu")
    hot, near = node("hot", cpu=CPU_LIMIT + 0.05, region="eu"), node("near", cpu=0.3, region="eu")
    nodes = [cool, full, hot, near, node("placed"), node("gone", draining=True)]
    for user in ("u1", "u2", "u3", "u4"):
        assert alternates(nodes, "placed", user, region="eu", limit=4) == [near, cool, full, hot]
        assert alternates(nodes, "placed", user, exclude={"near"}, limit=1) == [cool]
