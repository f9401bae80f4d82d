"""The relay's path (issue 12, item 23): relayed lines arrive in order and leave nothing queued.
(Writing each frame in the turn it is made, without the flusher task, was tried and taken out: closing
right after such a write lost the close frame of a ban, 4003 became 1006.)"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tests.signaling.conftest import Node


def flushers() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if not t.done() and "Session._flush" in t.get_coro().__qualname__]


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
