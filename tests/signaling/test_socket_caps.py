"""Sockets per token and per user are capped on a node: the socket over the cap gets an error frame
``too_many_sockets`` and close code 4029; the sockets already open stay."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Callable

from tests.signaling.conftest import SETTINGS, NodeFactory, Peer

CAPS = dataclasses.replace(SETTINGS, ws_max_sockets_per_token=2, ws_max_sockets_per_user=3)


async def refused(peer: Peer) -> None:
    error = await peer.expect("error")
    assert error["code"] == "too_many_sockets" and "at most 2 per token" in error["message"]
    assert await peer.closed() == 4029


async def test_sockets_over_the_caps_are_refused_and_the_old_ones_stay(make_node: NodeFactory,
                                                                       token: Callable[..., str]) -> None:
    node = await make_node(settings=CAPS)
    who = f"c{uuid.uuid4().hex[:10]}"
    one = token(who)
    first, second = await node.connect(one), await node.connect(one)
    await refused(await node.connect(one, hello=False))
    # The first message's token counts the same.
    late = await node.connect(None)
    await late.send({"type": "auth", "id": 1, "token": one})
    await refused(late)
    # Another token of the same user: up to the user's cap.
    third = await node.connect(token(who))
    await refused(await node.connect(token(who), hello=False))
    for peer in (first, second, third):
        assert (await peer.ok("ping"))["pong"] is True
    # Closing one frees its place (the server counts it down once it has seen the close).
    await first.ws.close()
    async with asyncio.timeout(5):
        while True:
            again = await node.connect(one, hello=False)
            if (await again.recv())["type"] == "hello":
                break
            await again.closed()
            await asyncio.sleep(0.05)
    assert (await again.ok("ping"))["pong"] is True
    # Someone else is not counted against this user.
    assert (await (await node.connect(token(f"o{uuid.uuid4().hex[:10]}"))).ok("ping"))["pong"] is True
