"""A show's origin record (signaling/origin_record.py) on a real Redis and a real Redis Cluster: the node
where the broadcaster creates the show claims it (and learns which node had it), and the old origin's
refresh never takes it back: it answers with the new origin instead."""

from __future__ import annotations

from typing import Any

import pytest

from signaling.origin_record import Origin, OriginRecords
from switchboard import keyspace
from switchboard.ids import NodeId, RoomId
from tests.conftest import REDIS_KINDS, redis_url_of

ROOM = RoomId("record-room")


@pytest.fixture(params=REDIS_KINDS)
def redis_url(request: pytest.FixtureRequest) -> str:
    return redis_url_of(request)


async def test_a_claim_takes_the_record_over_and_the_old_origins_refresh_yields(redis: Any) -> None:
    a, b = OriginRecords(redis, NodeId("node_a")), OriginRecords(redis, NodeId("node_b"))
    at_a = Origin(NodeId("node_a"), "caster", "sh_1", 1000, True)
    assert await a.claim(ROOM, at_a) is None  # nobody had it
    assert await a.refresh(ROOM, at_a) is None and await b.read(ROOM) == at_a  # still A's: written again
    at_b = Origin(NodeId("node_b"), "caster", "sh_1", 1000, True)
    assert await b.claim(ROOM, at_b) == at_a  # B learns that A had it
    assert await a.refresh(ROOM, at_a) == at_b  # A's refresh yields: B's record is answered, untouched
    assert await a.read(ROOM) == at_b and 0 < await redis.ttl(keyspace.show_origin(ROOM)) <= keyspace.SHOW_ORIGIN_TTL_S
    await a.withdraw(ROOM)  # not A's any more: left alone
    assert await b.read(ROOM) == at_b
    assert await b.claim(ROOM, at_b) is None  # claiming its own record again names nobody
    await b.withdraw(ROOM)
    assert await a.read(ROOM) is None
    assert await a.refresh(ROOM, at_a) is None and await b.read(ROOM) == at_a  # gone: the refresh writes it


async def test_an_unreadable_record_is_none_and_a_refresh_replaces_it(redis: Any) -> None:
    records = OriginRecords(redis, NodeId("node_a"))
    await redis.set(keyspace.show_origin(ROOM), "not json ⚡")
    assert await records.read(ROOM) is None
    mine = Origin(NodeId("node_a"), "caster")
    assert await records.refresh(ROOM, mine) is None and await records.read(ROOM) == mine
