"""The relay's hot path (issue 12, item 23): a frame for an attached socket is written in the loop
turn it is made, not one turn later by a task per frame; frames queue only behind a full socket."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from signaling.node import NODE_HUB
from switchboard.ids import UserId
from tests.signaling.conftest import Node


def flushers() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if not t.done() and "Session._flush" in t.get_coro().__qualname__]


async def test_a_frame_is_written_in_the_turn_it_is_made(make_node: Callable[..., object],
                                                         token: Callable[..., str]) -> None:
    node: Node = await make_node()
    peer = await node.connect(token("reader"))
    (session,) = node.app[NODE_HUB].sessions(UserId("reader"))
    for i in range(20):
        session.send({"type": "pong", "n": i})
    assert flushers() == []  # no task per frame: each went to the socket at once
    for i in range(20):
        assert (await peer.expect("pong"))["n"] == i  # in order


async def test_a_relayed_line_arrives_in_order_with_nothing_queued(make_node: Callable[..., object],
                                                                  token: Callable[..., str]) -> None:
    node: Node = await make_node()
    a = await node.connect(token("ann"))
    b = await node.connect(token("bob"))
    await a.send({"type": "call.invite", "id": 1, "to": "bob"})
    call_id = (await a.expect("reply", ref=1))["call_id"]
    await b.ok("call.accept", call_id=call_id)
    for i in range(30):
        await a.send({"type": "call.chat", "call_id": call_id, "text": str(i)})
    assert [(await b.expect("call.chat"))["text"] for _ in range(30)] == [str(i) for i in range(30)]
    assert flushers() == []
