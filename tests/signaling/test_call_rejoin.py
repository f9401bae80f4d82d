"""``call.rejoin`` (signaling/calls.py) on the real Redis, with stand-ins for the hub and the media: both
parties of an ``sfu`` call back at the same time on two nodes with no cascade between them cannot both
go on (two rooms, no media between them): the call ends with ``node_lost``."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from signaling.call_lease import NODE_LOST
from signaling.calls import CallBook
from signaling.errors import Conflict
from switchboard.ids import NodeId, UserId, new_id
from switchboard.keyspace import call, user_call
from switchboard.redis_client import text
from switchboard.registry import NodeEntry, NodeRegistry
from tests.conftest import REDIS_KINDS, redis_url_of


@pytest.fixture(params=REDIS_KINDS)
def redis_url(request: pytest.FixtureRequest) -> str:
    return redis_url_of(request)


class Hub:
    """A node's hub, as the call book uses it: who it delivered what."""

    def __init__(self, node_id: NodeId) -> None:
        self.node_id = node_id
        self.delivered: list[tuple[UserId, dict[str, Any]]] = []

    def observe(self, *_: Any) -> None:
        pass

    def sessions(self, _: UserId) -> list[Any]:
        return []

    async def deliver(self, user: UserId, message: dict[str, Any]) -> bool:
        self.delivered.append((user, message))
        return True


class Media:
    """Call media on a node with no cascade (``span`` None)."""

    span = None

    def started(self, *_: Any) -> None:
        pass


async def test_both_parties_back_at_once_on_two_nodes_end_an_sfu_call_without_a_cascade(redis: Any) -> None:
    registry = NodeRegistry(redis)
    nodes = [NodeId(new_id("node_")) for _ in range(2)]
    for n in nodes:
        await registry.announce(NodeEntry(id=n, url="http://127.0.0.1:1", media_address=""), 30)
    call_id, amy, bob = new_id("call_"), UserId(new_id("u_")), UserId(new_id("u_"))
    await redis.hset(call(call_id), mapping={"caller": amy, "callee": bob, "state": "active", "media": "sfu",
                                             "caller_node": "node_dead", "callee_node": "node_dead"})
    await redis.set(user_call(amy), call_id, ex=60)
    await redis.set(user_call(bob), call_id, ex=60)
    books = [CallBook(redis, Hub(n), 30.0, Media(), registry=registry) for n in nodes]  # type: ignore[arg-type]
    both_read = asyncio.Barrier(2)  # both have read the call hash before either writes its node

    def after_both_read(book: CallBook) -> None:
        alive, first = book.lease.alive, [True]

        async def wrapped(staying: bool = False) -> set[NodeId] | None:
            if first.pop() if first else False:
                await asyncio.wait_for(both_read.wait(), 30)
            return await alive(staying)
        book.lease.alive = wrapped  # type: ignore[method-assign]

    for book in books:
        after_both_read(book)
    answers = await asyncio.gather(
        books[0].rejoin(SimpleNamespace(user_id=amy, grants=SimpleNamespace(hidden=False)), {"call_id": call_id}),
        books[1].rejoin(SimpleNamespace(user_id=bob, grants=SimpleNamespace(hidden=False)), {"call_id": call_id}),
        return_exceptions=True)
    try:
        assert any(isinstance(a, Conflict) for a in answers), answers
        assert text(await redis.hget(call(call_id), "state")) == "ended"
        ended = [m for hub in (b._hub for b in books) for _, m in hub.delivered if m["type"] == "call.ended"]
        assert ended and all(m["reason"] == NODE_LOST for m in ended)
    finally:
        for book in books:
            await book.close()


async def test_a_call_that_ends_while_a_party_rejoins_opens_no_relay_to_the_other(redis: Any) -> None:
    """A hangup or a block between the rejoin's first read and its write: the rejoin is refused, and the
    party gets no way to send the other anything (the relay's peer) for the ended call."""
    registry = NodeRegistry(redis)
    here = NodeId(new_id("node_"))
    await registry.announce(NodeEntry(id=here, url="http://127.0.0.1:1", media_address=""), 30)
    call_id, amy, bob = new_id("call_"), UserId(new_id("u_")), UserId(new_id("u_"))
    await redis.hset(call(call_id), mapping={"caller": amy, "callee": bob, "state": "active", "media": "p2p",
                                             "caller_node": "node_dead", "callee_node": here})
    await redis.set(user_call(amy), call_id, ex=60)
    await redis.set(user_call(bob), call_id, ex=60)
    book = CallBook(redis, Hub(here), 30.0, Media(), registry=registry)  # type: ignore[arg-type]
    alive, first = book.lease.alive, [True]

    async def bob_hangs_up_meanwhile(staying: bool = False) -> set[NodeId] | None:
        if first.pop() if first else False:
            assert await book.part(bob, amy)  # bob blocks amy: the call ends (as a hangup by bob)
        return await alive(staying)
    book.lease.alive = bob_hangs_up_meanwhile  # type: ignore[method-assign]
    try:
        with pytest.raises(Conflict):
            await book.rejoin(SimpleNamespace(user_id=amy, grants=SimpleNamespace(hidden=False)),  # type: ignore[arg-type]
                              {"call_id": call_id})
        assert book.peer(amy, call_id) is None and call_id not in book.lease.held
    finally:
        await book.close()
