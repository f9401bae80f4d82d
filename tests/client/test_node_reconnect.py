"""The SDK's reconnect after a lost socket, against nodes that misbehave on purpose (docs/sdk.md).

Each "node" here is a real WebSocket server on 127.0.0.1 that speaks the first frames of the node
protocol (``hello``, the ``overloaded`` error) and does one wrong thing on purpose: drop every socket
after its ``hello``, never send ``hello``, refuse with ``overloaded``, or never answer the upgrade.
Real nodes do these only under faults (a kill, a hang, a storm) that a test cannot time.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import WSMsgType, web

from switchboard_client import NodeClient
from switchboard_client.api import NodeToken, PlacedTokens

_sessions = itertools.count(1)


class FakeNode:
    """A ``/ws`` on 127.0.0.1 whose answer to each socket is ``behave(n)`` for the n-th socket (from 1):
    ``hello`` (then the socket stays until the client closes it), ``hello_drop`` (``hello``, then the
    node closes it), ``stall`` (upgraded, never a frame), ``overloaded`` (the error frame, closed)."""

    def __init__(self, node_id: str, behave: Callable[[int], str], *, killed_after_first: bool = False) -> None:
        self.node_id = node_id
        self.killed_after_first = killed_after_first
        """Stop listening at the first socket (then drop it): later connects are refused, as a killed node's."""
        self.behave = behave
        self.sockets = 0
        self.open_now = 0
        self.open_max = 0
        self.stall_closes: list[int | None] = []
        """The close code of each ``stall`` socket as it ended (1006: the connection just dropped)."""
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/ws", self._ws)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._site = site
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets += 1
        mode = self.behave(self.sockets)
        if self.killed_after_first and self._site is not None and self._site._server is not None:
            self._site._server.close()  # no new connects from now on
        self.open_now += 1
        self.open_max = max(self.open_max, self.open_now)
        try:
            if mode in ("hello", "hello_drop"):
                await ws.send_json({"type": "hello", "session_id": f"s{next(_sessions)}", "user_id": "u1",
                                    "resume_token": "r1", "resumed": False, "node": self.node_id,
                                    "token_expires_at": int(time.time()) + 3600})
                if mode == "hello_drop":
                    await ws.close()
                    return ws
            elif mode == "overloaded":
                await ws.send_json({"type": "error", "code": "overloaded", "message": "busy", "retry_after": 1})
                await ws.close()
                return ws
            async for msg in ws:  # until the client closes it (or drops the connection)
                if msg.type == WSMsgType.CLOSE:
                    break
            if mode == "stall":
                self.stall_closes.append(ws.close_code)
            return ws
        finally:
            self.open_now -= 1


class Tokens(PlacedTokens):
    """The API's token answers as the node client sees them (:class:`PlacedTokens`, so ``avoid`` is
    used), here a given list of answers, the last repeated; each call's ``avoid`` is kept."""

    def __init__(self, answers: list[NodeToken]) -> None:
        super().__init__(None, None, "viewer")  # type: ignore[arg-type]  # no API: the answers are given
        self.answers = answers
        self.avoided: list[str | None] = []

    async def __call__(self) -> NodeToken:
        self.avoided.append(self.avoid)
        return self.answers[min(len(self.avoided), len(self.answers)) - 1]


def answer(node: str, *alternates: str) -> NodeToken:
    return NodeToken(token="t", expires_at=int(time.time()) + 3600, grants={}, node=node, alternates=alternates)


@contextlib.asynccontextmanager
async def nodes(*fakes: FakeNode) -> AsyncIterator[None]:
    for fake in fakes:
        await fake.start()
    try:
        yield
    finally:
        for fake in fakes:
            await fake.stop()


@contextlib.asynccontextmanager
async def silent_port() -> AsyncIterator[str]:
    """A port that accepts TCP connects and never answers a byte (a hung node)."""
    held: list[asyncio.StreamWriter] = []

    async def keep(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(keep, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        for writer in held:
            writer.close()


def closed_port() -> str:
    """A port nothing listens on (a killed node: the connect is refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


async def gone(client: NodeClient) -> None:
    """Until the client gave up (its ``closed`` event)."""
    with client.events("closed") as stream:
        await stream.next()


async def open_until_gone(client: NodeClient) -> None:
    """Opens the client, waits (30 s at most) until it gives up, and closes it whatever happens."""
    try:
        await client.open()
        async with asyncio.timeout(30):
            await gone(client)
    finally:
        await client.close()


async def test_a_connect_that_gets_no_hello_closes_its_socket() -> None:
    """The node drops the session, then upgrades each new socket and never sends ``hello``: each of the
    client's tries closes its socket (a close frame, code 1000) before the next. A socket left open,
    or only dropped when the client's garbage is collected (1006: the node keeps such a session
    for its resume window), is a session on the node counted against the token's sockets (4029)."""
    fake = FakeNode("node_a", lambda n: "hello_drop" if n == 1 else "stall")
    async with nodes(fake):
        client = NodeClient(fake.url, lambda: _str("t"), resume_window_s=3.0, request_timeout_s=0.4)
        await open_until_gone(client)  # gave up after the window
    assert fake.sockets >= 3 and fake.open_max == 1
    assert fake.stall_closes and set(fake.stall_closes) == {1000}


async def _str(token: str) -> str:
    return token


async def test_an_overloaded_node_is_never_reported_lost() -> None:
    """After a drop, the node (live) refuses every socket with ``overloaded``: the client waits as told
    and tries again, and never names the node to the API as lost (``avoid``)."""
    fake = FakeNode("node_a", lambda n: "hello_drop" if n == 1 else "overloaded")
    async with nodes(fake):
        tokens = Tokens([answer(fake.url)])
        client = NodeClient(fake.url, tokens, resume_window_s=7.0)
        await open_until_gone(client)
    assert fake.sockets >= 3  # tried with the held token and through the API
    assert len(tokens.avoided) >= 2 and tokens.avoided == [None] * len(tokens.avoided)


async def test_the_tries_with_the_held_token_leave_time_to_ask_the_api() -> None:
    """The node is killed and both alternates hang (accept, never answer): the held-token tries stop in
    time for the API's answer within the resume window; the API is told the killed node (it never
    answered) and names a live one."""
    base = closed_port()
    first = FakeNode("node_a", lambda n: "hello_drop", killed_after_first=True)
    live = FakeNode("node_d", lambda n: "hello")
    async with nodes(first, live), silent_port() as hung_b, silent_port() as hung_c:
        tokens = Tokens([answer(first.url, hung_b, hung_c), answer(live.url)])
        client = NodeClient(base, tokens, resume_window_s=10.0)
        moved = asyncio.Event()
        client.tracer = lambda step, fields: moved.set() if step == "hello" and fields["node"] == "node_d" else None
        try:
            await client.open()  # then node_a drops the socket and refuses connects
            with client.events("closed") as closed:
                ended = asyncio.ensure_future(closed.next())
                async with asyncio.timeout(30):
                    await asyncio.wait([ended, asyncio.ensure_future(moved.wait())],
                                       return_when=asyncio.FIRST_COMPLETED)
                ended.cancel()
            assert not client.closed and client.hello.node == "node_d"
            assert tokens.avoided[1:] == ["node_a"]
        finally:
            await client.close()


async def test_a_node_that_drops_each_session_at_once_gets_a_growing_backoff() -> None:
    """Each socket is dropped right after its ``hello``: the backoff keeps growing over the drops (it
    starts over only after a session of a few seconds), so the client does not open a socket every
    0.1 s; counted in sockets over a fixed run."""
    fake = FakeNode("node_a", lambda n: "hello_drop")
    async with nodes(fake):
        client = NodeClient(fake.url, lambda: _str("t"), resume_window_s=15.0)
        try:
            await client.open()
            await asyncio.sleep(4.0)
        finally:
            await client.close()
    # Waits of 0.05-0.1, then 0.1-0.2, 0.2-0.4, 0.4-0.8 and 0.5-1 s each: at most ~10 sockets in 4 s;
    # a backoff that starts over at each hello opens one every 0.1 s or less (40 or more).
    assert fake.sockets <= 15


async def test_a_hung_node_holds_the_held_token_tries_only_briefly() -> None:
    """The node drops the session, then upgrades each new socket and never sends ``hello`` (hung, not
    dead: no refused connect to move on from). The client gives the lost node a bounded try and moves
    to the token's alternate with the token it holds, asking the API nothing; before, the try on the
    hung node took what the window left for the held token and the client had to ask the API."""
    hung = FakeNode("node_a", lambda n: "hello_drop" if n == 1 else "stall")
    live = FakeNode("node_b", lambda n: "hello")
    by_api = FakeNode("node_c", lambda n: "hello")
    async with nodes(hung, live, by_api):
        tokens = Tokens([answer(hung.url, live.url), answer(by_api.url)])
        client = NodeClient(hung.url, tokens, resume_window_s=12.0)
        moved = asyncio.Event()
        client.tracer = lambda step, fields: moved.set() if step == "hello" and fields["node"] != "node_a" else None
        try:
            await client.open()  # then node_a drops the socket and hangs every new one
            async with asyncio.timeout(30):
                await moved.wait()
            assert client.hello.node == "node_b"
            assert len(tokens.avoided) == 1  # the first token only: no API request after the drop
        finally:
            await client.close()
    assert hung.sockets == 2 and hung.stall_closes == [1000]  # one bounded try, its socket closed


async def test_a_refused_upgrade_is_logged_without_the_token(caplog: pytest.LogCaptureFixture) -> None:
    """A node that refuses the upgrade (here 403) after a drop: aiohttp's error prints the request URL,
    whose query holds the token; the client's log lines say the error without it."""
    secret = "tok-" + "s3cr3t" * 4
    refused = 0

    async def ws(request: web.Request) -> web.StreamResponse:
        nonlocal refused
        if refused == 0 and request.query.get("resume") is None:
            refused = -1
            sock = web.WebSocketResponse()
            await sock.prepare(request)
            await sock.send_json({"type": "hello", "session_id": "s1", "user_id": "u1", "resume_token": "r1",
                                  "resumed": False, "node": "node_a", "token_expires_at": int(time.time()) + 3600})
            await sock.close()
            return sock
        refused += 1
        return web.Response(status=403, text="no")

    app = web.Application()
    app.router.add_get("/ws", ws)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    caplog.set_level(logging.DEBUG, logger="switchboard_client.node")
    client = NodeClient(url, lambda: _str(secret), resume_window_s=3.0)
    try:
        await open_until_gone(client)
    finally:
        await runner.cleanup()
    failed = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert refused >= 1 and failed and any("403" in line for line in failed), failed
    assert not any(secret in r.getMessage() for r in caplog.records)
