"""One keepalive task per node: a socket that answers pings stays, a silent one is closed."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable

import aiohttp

from switchboard.wire import Codec
from tests.signaling.conftest import SETTINGS, NodeFactory, Peer

INTERVAL_S = 0.2


async def test_silent_socket_closed_and_live_one_kept(make_node: NodeFactory, token: Callable[..., str]) -> None:
    node = await make_node(settings=dataclasses.replace(SETTINGS, ws_ping_interval_s=INTERVAL_S))
    live = await node.connect(token("kim"))  # aiohttp answers pings by itself (autoping)
    ws = await node.client.ws_connect("/ws", params={"token": token("lou")}, autoping=False)
    silent = Peer(ws, Codec.JSON)
    await silent.expect("hello")
    # The live socket reads all along (aiohttp answers pings inside receive()) but gets no message.
    reading = asyncio.get_running_loop().create_task(live.ws.receive())
    pings = 0
    async with asyncio.timeout(5):
        while True:
            msg = await ws.receive()
            if msg.type is aiohttp.WSMsgType.PING:
                pings += 1  # never answered
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                break
    assert pings >= 1 and ws.close_code == 1001
    await asyncio.wait([reading], timeout=INTERVAL_S * 6)  # several more intervals
    assert not reading.done(), reading.result()  # no close, no message: only pings, answered
    reading.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reading
    assert (await live.ok("ping"))["pong"] is True


async def test_client_ping_answered(node: object, token: Callable[..., str]) -> None:
    peer = await node.connect(token("max"))  # type: ignore[attr-defined]
    await peer.ws.ping(b"are you there")
    assert (await peer.ok("ping"))["pong"] is True
