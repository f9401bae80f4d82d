"""A connect storm against a real ``switchboard node`` process, through its public door (raw TCP, the
way a storm arrives): the node starts only the connects its handshakes have room for, refuses the
overflow with a bare ``503`` and ``Retry-After`` before any HTTP work (switchboard/listener.py), and
serves the ones it took and a normal connect after the storm.

Capacity is made a fact of the test: two sockets upgraded without a token hold the node's two
handshake slots (``ws_max_handshakes=2``) until the test lets them authenticate."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from typing import Any

import aiohttp

from switchboard_client.node import NodeClient
from tests.signaling.node_processes import (
    NodeProcess,
    node_starter,  # noqa: F401 (the start_node fixture)
)

STORM = 200
QUEUE = 4
ANSWER_S = 60.0
"""Every storm socket has its answer within this (generous: the box is shared)."""
FRAME_S = 30.0
"""A frame the node owes comes within this."""


class RawSocket:
    """A WebSocket spoken by hand: the upgrade, masked client frames, unmasked server frames."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status: int,
                 headers: dict[str, str], body: bytes) -> None:
        self.reader, self.writer = reader, writer
        self.status, self.headers, self.body = status, headers, body

    @classmethod
    async def open(cls, port: int, token: str | None) -> RawSocket:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        path = f"/ws?token={token}" if token else "/ws"
        writer.write((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:] if line)}
        body = b""
        if status != 101:
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            assert await reader.read() == b""  # then the node closes: nothing else on the wire
            writer.close()
        return cls(reader, writer, status, headers, body)

    def send(self, message: dict[str, Any]) -> None:
        payload, mask = json.dumps(message).encode(), os.urandom(4)
        assert len(payload) < 1 << 16
        size = (bytes([0x80 | len(payload)]) if len(payload) < 126
                else bytes([0x80 | 126]) + len(payload).to_bytes(2, "big"))
        self.writer.write(b"\x81" + size + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    async def recv(self) -> dict[str, Any]:
        async with asyncio.timeout(FRAME_S):
            b0, b1 = await self.reader.readexactly(2)
            length = b1 & 0x7F
            if length == 126:
                length = int.from_bytes(await self.reader.readexactly(2), "big")
            elif length == 127:
                length = int.from_bytes(await self.reader.readexactly(8), "big")
            payload = await self.reader.readexactly(length)
        assert b0 & 0x0F == 1, f"opcode {b0 & 0x0F}: {payload!r}"
        return json.loads(payload)  # type: ignore[no-any-return]

    async def expect(self, kind: str) -> dict[str, Any]:
        while True:
            frame = await self.recv()
            if frame["type"] == kind:
                return frame
            assert frame["type"] != "error", frame


async def test_a_connect_storm_is_refused_at_accept_and_what_the_node_takes_works(
        start_node: Callable[..., Any], token: Callable[..., str]) -> None:
    node: NodeProcess = await start_node(SWITCHBOARD_NODE_WS_MAX_HANDSHAKES="2",
                                         SWITCHBOARD_NODE_WS_GATE_QUEUE=str(QUEUE),
                                         SWITCHBOARD_NODE_WS_GATE_WAIT_S="120")
    holders: list[RawSocket] = []
    taken: list[RawSocket] = []
    try:
        holders += [await RawSocket.open(node.port, None) for _ in range(2)]  # upgraded, no token yet
        assert [h.status for h in holders] == [101, 101]

        attempts = [asyncio.create_task(asyncio.wait_for(RawSocket.open(node.port, token(f"storm{i}")), ANSWER_S))
                    for i in range(STORM)]
        answers = asyncio.as_completed(attempts, timeout=ANSWER_S)
        refused = [await next(answers) for _ in range(STORM - QUEUE)]  # while the slots are still held
        assert {r.status for r in refused} == {503}, {r.status for r in refused}
        for r in refused:
            assert r.headers["retry-after"] == "1" and json.loads(r.body)["code"] == "overloaded", (r.headers, r.body)
        await asyncio.sleep(0.5)
        assert sum(a.done() for a in attempts) == STORM - QUEUE  # the queued ones wait for a slot, not refused

        for i, holder in enumerate(holders):  # the slots free up: the queued connects are served
            holder.send({"type": "auth", "id": "a", "token": token(f"holder{i}")})
            await holder.expect("hello")
        taken += [r for r in await asyncio.gather(*attempts) if r.status == 101]
        assert len(taken) == QUEUE
        for i, peer in enumerate(taken + holders):
            if peer not in holders:
                await peer.expect("hello")
            peer.send({"type": "ping", "id": f"p{i}"})
            assert (await peer.expect("reply"))["ref"] == f"p{i}"

        async with aiohttp.ClientSession() as http:  # a normal connect right after the storm
            after = await node.connect(http, token("after"))
            assert (await after.ok("ping"))["type"] == "reply"
            await after.ws.close()
    finally:
        for peer in taken + holders:
            peer.writer.close()


async def test_the_sdk_comes_back_after_a_refusal_at_accept(start_node: Callable[..., Any],
                                                          token: Callable[..., str]) -> None:
    node: NodeProcess = await start_node(SWITCHBOARD_NODE_WS_MAX_HANDSHAKES="1", SWITCHBOARD_NODE_WS_GATE_QUEUE="1",
                                         SWITCHBOARD_NODE_WS_GATE_WAIT_S="120")
    holder = await RawSocket.open(node.port, None)  # holds the one slot
    waiting: list[asyncio.Task[RawSocket]] = []
    client = NodeClient(f"http://127.0.0.1:{node.port}", _fixed(token("sdk")))
    try:
        waiting += [asyncio.create_task(RawSocket.open(node.port, token(f"raw{i}"))) for i in range(2)]
        done, _ = await asyncio.wait(waiting, timeout=ANSWER_S, return_when=asyncio.FIRST_COMPLETED)
        assert [t.result().status for t in done] == [503]  # so the other one fills the queue
        opening = asyncio.create_task(client.open())  # refused at once: no slot, no room in the queue
        await asyncio.sleep(2)  # (its first connect is answered meanwhile; Retry-After is 1 s)
        holder.send({"type": "auth", "id": "a", "token": token("holder")})
        await holder.expect("hello")
        queued = next(t for t in waiting if t not in done)
        await (await queued).expect("hello")
        async with asyncio.timeout(ANSWER_S):
            hello = await opening
        assert hello.user_id == "sdk"
    finally:
        await client.close()
        holder.writer.close()
        for task in waiting:
            if task.done() and not task.exception():
                task.result().writer.close()


def _fixed(token: str) -> Callable[[], Any]:
    async def source() -> str:
        return token

    return source
