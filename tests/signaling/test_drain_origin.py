"""Draining a show's origin: the show goes on at the node its broadcaster moves to, for every viewer.

Three real ``switchboard node`` processes with the cascade on (on one Redis and on a Redis Cluster):
the broadcaster and a viewer on A (the show's origin), a viewer on B and one on C (edges: each pulls
the show from A), all SDK clients with real aiortc peer connections. A is drained: its viewer moves
first (make-before-break, the show still playing at A), then its broadcaster is told to move and
creates the show again on the node the drain names (one of the edges): that node's copy becomes the
show, it claims the show's origin record (signaling/origin_record.py) and tells A (``show.moved``); A
hands the show over (its copy becomes an edge of the new origin), tells its other edge
(``pipe.gone``), which pulls the show from the new origin at once, and exits when its sockets have
left. Every viewer keeps decoding: A's viewer moved (make-before-break), the two others never left
their node, nobody's show ended, and it is the same show (its id, the tickets of a paid one).
Before: the other edge's viewer got ``show.ended`` (``owner left``: A ended the show when its
broadcaster's session went) and the adopting edge's viewer's relayed track stayed on the dead
pipe's track. What is asserted is what each client saw, never how long anything took.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from signaling.origin_record import OriginRecords
from switchboard.ids import NodeId, RoomId
from switchboard_client import NodeClient, publish_show, view_show
from switchboard_client.media import TestPattern
from tests.conftest import REDIS_KINDS, redis_url_of
from tests.signaling.node_processes import node_starter  # noqa: F401 (the start_node fixture)
from tests.signaling.test_drain_handover import BOUND_S, SECRET, Watch, tokens
from tests.signaling.test_nodes import registered, switchboard

ROOM = "drain-origin"


async def decoded(watch: Watch, count: int, since: int) -> None:
    """Until ``watch``'s viewing gave ``count`` frames after log entry ``since`` (any peer connection)."""
    async with asyncio.timeout(BOUND_S):
        while sum(1 for step, _ in watch.log[since:] if step == "frame") < count:  # noqa: ASYNC110 (polls the log)
            await asyncio.sleep(0.05)


@pytest.fixture(params=REDIS_KINDS)
def redis_url(request: pytest.FixtureRequest) -> str:
    return redis_url_of(request)


async def test_a_drained_origins_show_goes_on_at_its_broadcasters_new_node_for_every_viewer(
        start_node: Callable[..., Any], token: Callable[..., str], redis: Any) -> None:
    a, b, c = await asyncio.gather(start_node(SWITCHBOARD_CASCADE_SECRET=SECRET, SWITCHBOARD_NODE_DRAIN_GRACE_S="60"),
                                   start_node(SWITCHBOARD_CASCADE_SECRET=SECRET),
                                   start_node(SWITCHBOARD_CASCADE_SECRET=SECRET))
    host = NodeClient(f"http://127.0.0.1:{a.port}", tokens(token("caster", ROOM, publish=True)))
    viewers = {name: NodeClient(f"http://127.0.0.1:{node.port}", tokens(token(name, ROOM, subscribe=True)))
               for name, node in (("on-a", a), ("on-b", b), ("on-c", c))}
    watches = {name: Watch(client) for name, client in viewers.items()}
    order: list[tuple[str, str]] = []  # the broadcaster's and A's viewer's SDK steps, in one order
    host.tracer = lambda step, fields: order.append(("host", step))
    a_viewer = viewers["on-a"].tracer
    assert a_viewer is not None

    def on_a(step: str, fields: dict[str, Any]) -> None:
        order.append(("on-a", step))
        a_viewer(step, fields)
    viewers["on-a"].tracer = on_a
    closables: list[Any] = []
    try:
        async with asyncio.timeout(BOUND_S):
            await host.open()
            show = await publish_show(host, ROOM, [TestPattern()])
            closables.append(show)
            viewings = {}
            for name, client in viewers.items():
                await client.open()
                viewings[name] = await view_show(client, ROOM)
                closables.append(viewings[name])
                await watches[name].read(viewings[name])
                await watches[name].until(0, 10)
            a.node_id, b.node_id, c.node_id = (viewers[n].hello.node for n in ("on-a", "on-b", "on-c"))
            assert host.hello.node == a.node_id and len({a.node_id, b.node_id, c.node_id}) == 3
            await registered(redis, {a.node_id, b.node_id, c.node_id})
            records = OriginRecords(redis, NodeId("the-test"))
            before = await records.read(RoomId(ROOM))
            assert before is not None and before.node == a.node_id and before.show_id

        code, _, err = await switchboard(b, "node", "drain", a.node_id)
        assert code == 0, err
        async with asyncio.timeout(BOUND_S):
            assert await a.proc.wait() == 0  # every socket left the drained origin: it exited
        await registered(redis, {b.node_id, c.node_id})
        new = host.hello.node
        assert new in (b.node_id, c.node_id) and show.rejoins == 1  # the broadcaster published again there
        after = await records.read(RoomId(ROOM))
        assert after is not None and after.node == new
        assert (after.show_id, after.started_ms) == (before.show_id, before.started_ms)  # the same show goes on
        marks = {name: len(w.log) for name, w in watches.items()}
        for name, watch in watches.items():  # every viewer decodes after the drained origin exited
            await decoded(watch, 30, marks[name])
        for name, viewing in viewings.items():
            assert viewing.ended is None, (name, viewing.ended)  # nobody's show ended
        assert viewers["on-a"].hello.node in (b.node_id, c.node_id) and viewers["on-a"].moves == 1  # it moved
        # The drained origin's viewer moved while the show still played there (switched to its new peer
        # connection and left A) before the broadcaster was told to move (signaling.drain.HOSTS_AFTER_S).
        assert order.index(("on-a", "switched")) < order.index(("on-a", "moved")) < order.index(("host", "moving"))
        for name in ("on-b", "on-c"):  # the edges' viewers never left their node
            assert viewers[name].moves == 0 and viewings[name].rejoins == 0, name
        assert (await viewings["on-b"].roster())["viewers"] == 3  # counted once each, over both nodes
    finally:
        for watch in watches.values():
            await watch.close()
        for closable in reversed(closables):
            await closable.close()
        for client in (*viewers.values(), host):
            await client.close()
