"""A session's close leaves no task behind (issue 12, item 20): the slow-reader close is tracked."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from signaling.node import NODE_HUB
from switchboard.ids import UserId
from tests.signaling.conftest import Node


def socket_closes() -> list[asyncio.Task[object]]:
    """Pending tasks closing a WebSocket (the slow-reader drop's)."""
    return [t for t in asyncio.all_tasks() if not t.done() and "close" in t.get_coro().__qualname__
            and ("WebSocketResponse" in t.get_coro().__qualname__ or "_close_slow" in t.get_coro().__qualname__)]


async def test_closing_a_dropped_slow_reader_awaits_its_socket_close(make_node: Callable[..., object],
                                                                     token: Callable[..., str]) -> None:
    from tests.signaling.conftest import SETTINGS

    node: Node = await make_node(settings=SETTINGS.__class__(ws_send_queue=4))
    peer = await node.connect(token("slow"))
    (session,) = node.app[NODE_HUB].sessions(UserId("slow"))
    filler = "x" * 32_000  # a reader that reads nothing: once the socket's buffers are full, frames queue
    for i in range(5_000):
        session.send({"type": "pong", "n": i, "filler": filler})
        if not session.attached:
            break  # over the queue's bound: dropped as a slow reader
    assert socket_closes(), "the drop closes the socket in a task"
    await session.close()
    assert socket_closes() == []
    assert await peer.closed() == 1013
