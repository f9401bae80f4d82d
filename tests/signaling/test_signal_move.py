"""``web/lib/signal.js`` follows a drain's ``reconnect`` make-before-break, in headless Chromium against two
``/ws`` this test serves (node A drains, node B is the one it names):

- the socket to B opens while A's stays open; requests go through A until B's ``hello``, then through B;
  a request sent on A before the switch still gets its answer from A, and A's events after the switch
  are not the page's any more;
- a ``makeBeforeBreak`` page keeps A's socket until it calls ``moveDone()`` (the ``left`` state);
  another page's A socket closes at B's ``hello``;
- a named node that refuses the socket ends the move: the page closes A's socket and reconnects the
  usual way (``getToken``).

Everything asserted is an order of events (what the servers saw, the page's states), never a time."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from playwright.async_api import Page, async_playwright

from tests.e2e.browser import CHROMIUM, FLAGS

pytestmark = [pytest.mark.chromium]

SIGNAL_JS = Path(__file__).resolve().parents[2] / "web" / "lib" / "signal.js"
STEP_S = 30.0
"""Upper bound for each step (never asserted: the machine is shared)."""


class FakeNode:
    """A ``/ws`` that says ``hello`` (once ``hold`` is set, when there is one), answers ``ping`` at once
    and ``slow`` when :meth:`answer_slow` says so, and records its sockets' closes. ``refuse``: 503."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.refuse = False
        self.hold: asyncio.Event | None = None
        self.sockets: list[web.WebSocketResponse] = []
        self.opened = asyncio.Event()
        self.closed: list[int] = []
        """Indexes of the sockets that closed, in order."""
        self.gone = asyncio.Event()
        self.slow: list[tuple[web.WebSocketResponse, int]] = []

    async def ws(self, request: web.Request) -> web.StreamResponse:
        if self.refuse:
            return web.Response(status=503, text="not now")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        n = len(self.sockets)
        self.sockets.append(ws)
        self.opened.set()
        if self.hold is not None:
            await self.hold.wait()
        await ws.send_json({"type": "hello", "node": self.name, "session_id": f"s-{self.name}-{n}",
                            "resume_token": f"r-{self.name}-{n}", "resumed": False, "token_expires_at": 0})
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            message = json.loads(msg.data)
            if message.get("type") == "ping":
                await ws.send_json({"type": "reply", "ref": message["id"], "node": self.name})
            elif message.get("type") == "slow":
                self.slow.append((ws, message["id"]))
        self.closed.append(n)
        self.gone.set()
        return ws

    async def answer_slow(self) -> None:
        ws, ref = self.slow.pop(0)
        await ws.send_json({"type": "reply", "ref": ref, "node": self.name})

    async def drain(self, to: str) -> None:
        """The ``reconnect`` a draining node sends, on its last socket."""
        await self.sockets[-1].send_json({"type": "reconnect", "url": to, "node": "node-b", "reason": "drain"})


async def page_js(request: web.Request) -> web.FileResponse:
    return web.FileResponse(SIGNAL_JS, headers={"Content-Type": "text/javascript"})


OPEN = """async ([a, makeBeforeBreak]) => {
  const { Signal } = await import("/static/lib/signal.js");
  window.states = [];
  window.notes = [];
  const getToken = async () => ({ token: "t", node: a });
  window.signal = new Signal({ getToken, resumeKey: "move-test", makeBeforeBreak });
  window.signal.on("note", (m) => window.notes.push(m));
  window.signal.addEventListener("state", (e) => window.states.push(e.detail));
  window.stateSeen = (name, n) => new Promise((resolve) => {
    const look = () => window.states.filter((s) => s.state === name).length >= n ? resolve() : setTimeout(look, 20);
    look();
  });
  return (await window.signal.connect()).node;
}"""


async def two_nodes(aiohttp_server: Callable[..., Awaitable[Any]]) -> tuple[FakeNode, FakeNode, str, str]:
    nodes, urls = (FakeNode("node-a"), FakeNode("node-b")), []
    for node in nodes:
        app = web.Application()
        app.router.add_get("/ws", node.ws)
        app.router.add_get("/static/lib/signal.js", page_js)
        urls.append(str((await aiohttp_server(app)).make_url("/")))
    return nodes[0], nodes[1], urls[0], urls[1]


@contextlib.asynccontextmanager
async def signal_page(url: str, make_before_break: bool) -> AsyncIterator[Page]:
    """A Chromium page with signal.js open on the node at ``url`` (``OPEN``: said ``hello`` from node-a)."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=[*FLAGS, "--enable-automation"],
                                           timeout=STEP_S * 1000)
        try:
            page = await browser.new_page()
            await page.goto(f"{url}static/lib/signal.js")
            assert await asyncio.wait_for(page.evaluate(OPEN, [url, make_before_break]), STEP_S) == "node-a"
            yield page
        finally:
            await browser.close()


async def ping(page: Page) -> str:
    return str(await page.evaluate("window.signal.request('ping').then((r) => r.node)"))


async def test_signal_js_moves_make_before_break_and_keeps_the_old_socket_until_move_done(
        aiohttp_server: Callable[..., Awaitable[Any]]) -> None:
    a, b, a_url, b_url = await two_nodes(aiohttp_server)
    b.hold = asyncio.Event()
    async with signal_page(a_url, make_before_break=True) as page:
        await a.drain(b_url)
        async with asyncio.timeout(STEP_S):
            await b.opened.wait()  # the new socket is open (upgraded), its hello held back
        assert await ping(page) == "node-a" and not a.closed  # the old session still serves the page
        await page.evaluate("() => { window.slow = window.signal.request('slow').then((r) => r.node); }")
        async with asyncio.timeout(STEP_S):
            while not a.slow:  # noqa: ASYNC110 (polls what the server received)
                await asyncio.sleep(0.02)

        b.hold.set()
        await asyncio.wait_for(page.evaluate("window.stateSeen('connected', 2)"), STEP_S)
        assert await ping(page) == "node-b"  # requests go to the new session from its hello on
        await a.sockets[0].send_json({"type": "note", "from": "node-a"})
        await a.answer_slow()  # after the note, on the same socket: the note came first
        assert await asyncio.wait_for(page.evaluate("window.slow"), STEP_S) == "node-a"
        assert await page.evaluate("window.notes") == []  # the old socket's events are not the page's
        assert not a.closed  # kept until the page says its media moved

        await page.evaluate("window.signal.moveDone()")
        async with asyncio.timeout(STEP_S):
            await a.gone.wait()
        await asyncio.wait_for(page.evaluate("window.stateSeen('left', 1)"), STEP_S)
        states = await page.evaluate("window.states")
        assert [s["state"] for s in states] == ["connected", "moving", "connected", "left"], states
        assert states[1] == {"state": "moving", "node": "node-b", "reason": "drain"}
        assert states[2] == {"state": "connected", "resumed": False, "moved": True, "node": "node-b",
                             "overlap": True}
        assert states[3] == {"state": "left", "node": "node-a"}
        assert a.closed == [0] and not b.closed and len(b.sockets) == 1
        await page.evaluate("window.signal.close()")


async def test_a_page_that_does_not_move_media_drops_the_old_socket_at_the_new_hello(
        aiohttp_server: Callable[..., Awaitable[Any]]) -> None:
    a, b, a_url, b_url = await two_nodes(aiohttp_server)
    b.hold = asyncio.Event()
    async with signal_page(a_url, make_before_break=False) as page:
        await a.drain(b_url)
        async with asyncio.timeout(STEP_S):
            await b.opened.wait()
        assert await ping(page) == "node-a" and not a.closed
        b.hold.set()
        async with asyncio.timeout(STEP_S):
            await a.gone.wait()  # closed by the page at the new hello
        await asyncio.wait_for(page.evaluate("window.stateSeen('left', 1)"), STEP_S)
        states = await page.evaluate("window.states")
        assert [s["state"] for s in states] == ["connected", "moving", "connected", "left"], states
        assert states[2]["overlap"] is False and states[2]["node"] == "node-b"
        assert await ping(page) == "node-b"
        await page.evaluate("window.signal.close()")


async def test_a_named_node_that_refuses_ends_the_move_and_the_page_reconnects_the_usual_way(
        aiohttp_server: Callable[..., Awaitable[Any]]) -> None:
    a, b, a_url, b_url = await two_nodes(aiohttp_server)
    b.refuse = True
    async with signal_page(a_url, make_before_break=True) as page:
        await a.drain(b_url)
        # B refuses: the page leaves A's socket and asks getToken again (here: A, which takes it).
        await asyncio.wait_for(page.evaluate("window.stateSeen('connected', 2)"), STEP_S)
        async with asyncio.timeout(STEP_S):
            await a.gone.wait()
        states = await page.evaluate("window.states")
        assert [s["state"] for s in states] == ["connected", "moving", "reconnecting", "connected"], states
        assert a.closed == [0] and len(a.sockets) == 2 and not b.sockets
        assert "overlap" not in states[-1]
        assert await ping(page) == "node-a"
        await page.evaluate("window.signal.close()")
