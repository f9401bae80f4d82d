"""The SDK's move after a drain's ``reconnect`` (make-before-break), against small real WebSocket nodes.

Each "node" is an aiohttp ``/ws`` on 127.0.0.1 that says ``hello``, answers ``ping`` with its own id,
and writes what happened to a log shared by the test's nodes, in order: when a socket opened, said
hello and closed. The draining node sends ``reconnect`` naming the other when the test asks. The real
nodes' side of a drain is tested in tests/signaling/test_drain_handover.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import WSMsgType, web

from switchboard_client import NodeClient
from switchboard_client.api import NodeToken


class Node:
    def __init__(self, node_id: str, log: list[str]) -> None:
        self.node_id = node_id
        self.log = log
        self.url = ""
        self.sockets: list[web.WebSocketResponse] = []
        self.tokens: list[str] = []
        """The ``token`` of each socket, in order."""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/ws", self._ws)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def drain_to(self, other: str) -> None:
        """``reconnect`` on every open socket, naming ``other`` (a URL)."""
        for ws in self.sockets:
            if not ws.closed:
                await ws.send_json({"type": "reconnect", "url": other, "node": "other", "reason": "drain"})

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        self.tokens.append(request.query.get("token", ""))
        self.log.append(f"{self.node_id} open")
        await ws.send_json({"type": "hello", "session_id": f"s{len(self.sockets)}", "user_id": "u1",
                            "resume_token": "r1", "resumed": False, "node": self.node_id,
                            "token_expires_at": int(time.time()) + 3600})
        async for msg in ws:
            if msg.type == WSMsgType.TEXT and msg.json().get("type") == "ping":
                await ws.send_json({"type": "reply", "ref": msg.json()["id"], "node": self.node_id})
        self.log.append(f"{self.node_id} closed")
        return ws


@contextlib.asynccontextmanager
async def two_nodes() -> AsyncIterator[tuple[Node, Node, list[str]]]:
    log: list[str] = []
    old, new = Node("node_old", log), Node("node_new", log)
    await old.start()
    await new.start()
    try:
        yield old, new, log
    finally:
        await old.stop()
        await new.stop()


async def token() -> str:
    return "t"


async def until(condition: object) -> None:
    async with asyncio.timeout(10):
        while not condition():  # type: ignore[operator]  # noqa: ASYNC110 (polls the nodes' log)
            await asyncio.sleep(0.01)


async def test_a_reconnect_opens_the_named_node_before_the_old_socket_closes() -> None:
    async with two_nodes() as (old, new, log):
        client = NodeClient(old.url, token)
        steps: list[str] = []
        client.tracer = lambda step, fields: steps.append(step)
        try:
            await client.open()
            await old.drain_to(new.url)
            await until(lambda: "node_old closed" in log)
            # No member waits for media: the old socket closes once the new session said hello.
            assert log == ["node_old open", "node_new open", "node_old closed"]
            assert client.hello.node == "node_new" and client.moves == 1
            assert (await client.request("ping"))["node"] == "node_new"
            assert "socket_lost" not in steps and steps.index("hello", 1) < steps.index("moved")
        finally:
            await client.close()


@pytest.mark.parametrize(("lifetime", "asked"), [(3600, 1), (5, 2)])
async def test_a_move_uses_the_token_it_holds_and_asks_the_source_nothing(lifetime: int, asked: int) -> None:
    """A drain's burst asked the API for a token per client at once (and it shed many): a client holding
    a token with time left takes it to the named node; one near its expiry asks the source."""
    async with two_nodes() as (old, new, log):
        calls: list[int] = []

        async def placed() -> NodeToken:
            calls.append(1)
            return NodeToken(f"t{len(calls)}", int(time.time()) + lifetime, {}, node=old.url)

        client = NodeClient(old.url, placed)
        try:
            await client.open()
            await old.drain_to(new.url)
            await until(lambda: "node_old closed" in log)
            assert client.hello.node == "node_new"
            assert len(calls) == asked and new.tokens == [f"t{asked}"]
        finally:
            await client.close()


async def test_the_old_socket_waits_for_the_switchers() -> None:
    """A switcher (a show viewing) keeps the old socket open beside the new session until it switched;
    requests go to the new session meanwhile."""
    async with two_nodes() as (old, new, log):
        client = NodeClient(old.url, token)
        viewing, tap = object(), object()
        try:
            await client.open()
            client.add_switcher(viewing)
            client.add_switcher(tap)
            await old.drain_to(new.url)
            await until(lambda: client.handover is not None and client.hello.node == "node_new")
            handover = client.handover
            assert handover is not None and handover.waits_for(viewing) and handover.waits_for(tap)
            assert (await client.request("ping"))["node"] == "node_new"
            handover.switched(viewing)
            client.remove_switcher(tap)  # a member that closes counts as switched
            await until(lambda: "node_old closed" in log)
            assert log == ["node_old open", "node_new open", "node_old closed"] and handover.done.is_set()
            assert not handover.waits_for(viewing) and not client.closed
            assert (await client.request("ping"))["node"] == "node_new"
        finally:
            await client.close()
        await until(lambda: log[-1] == "node_new closed")  # the client closes the new socket too


async def test_a_reconnect_to_an_unreachable_node_leaves_the_old_one_and_reconnects_as_after_a_drop() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens there
    async with two_nodes() as (old, _, log):
        client = NodeClient(old.url, token, resume_window_s=10.0)
        try:
            await client.open()
            await old.drain_to(nowhere)
            await until(lambda: log.count("node_old open") == 2)
            assert log[:3] == ["node_old open", "node_old closed", "node_old open"]
            await until(lambda: client.hello.session_id == "s2")
            assert not client.closed and client.hello.node == "node_old"
        finally:
            await client.close()
