"""``web/lib/signal.js``'s reconnect backoff and its bound on a lost node's try, in headless Chromium
against a ``/ws`` this test serves (its answer to each connect is the test's: refuse it, ``hello`` then
keep or drop the socket, or hang):
failed attempts wait longer and longer, each a draw between half and all of its step, up to the cap;
a session that lasted ``STABLE_MS`` starts the backoff over; sessions dropped right after their
``hello`` keep it growing.

The waits asserted are the ones the page asks its timer for (read at ``setTimeout``), against the
steps' bounds; real time is only checked from below (a wait is never shorter than asked)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import async_playwright

from tests.e2e.browser import CHROMIUM, FLAGS

pytestmark = [pytest.mark.chromium]

SIGNAL_JS = Path(__file__).resolve().parents[2] / "web" / "lib" / "signal.js"
STEP_S = 60.0


def constant(name: str) -> Any:
    """A constant of signal.js as it is written there (the test follows the file, not a copy)."""
    found = re.search(rf"^const {name} = (.+?);", SIGNAL_JS.read_text(), re.M)
    assert found, name
    return json.loads(found.group(1))


BACKOFF_MS: list[int] = constant("BACKOFF_MS")
STABLE_MS: int = constant("STABLE_MS")


def step(attempt: int) -> int:
    """The backoff step of the ``attempt``-th wait since the last reset (0 first), capped at the last."""
    return BACKOFF_MS[min(attempt, len(BACKOFF_MS) - 1)]


class Door:
    """The test's ``/ws``: each connect takes the next of ``plans`` (``refuse``: a 503, no upgrade;
    ``drop``: ``hello`` then closed at once; ``stay``: ``hello``, then open until :meth:`drop_open`;
    ``stall``: upgraded, then never a frame: a hung node)."""

    def __init__(self, plans: list[str], node: str = "node-t") -> None:
        self.plans = plans
        self.node = node
        self.stalls_closed = 0
        """``stall`` sockets the page closed."""
        self.seen: list[tuple[str, float]] = []
        """(plan, loop time) of each connect, in order."""
        self.open: web.WebSocketResponse | None = None
        self.stayed = asyncio.Event()

    async def ws(self, request: web.Request) -> web.StreamResponse:
        plan = self.plans.pop(0) if self.plans else "refuse"
        self.seen.append((plan, asyncio.get_running_loop().time()))
        if plan == "refuse":
            return web.Response(status=503, text="not now")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        if plan == "stall":
            async for _ in ws:
                pass
            self.stalls_closed += 1
            return ws
        await ws.send_str(json.dumps({"type": "hello", "node": self.node, "resume_token": f"r{len(self.seen)}",
                                      "resumed": False, "token_expires_at": 0}))
        if plan == "drop":
            await ws.close(code=1012, message=b"restarting")
            return ws
        self.open = ws
        self.stayed.set()
        async for _ in ws:
            pass
        return ws

    async def drop_open(self) -> None:
        ws, self.open = self.open, None
        self.stayed.clear()
        assert ws is not None
        await ws.close(code=1012, message=b"restarting")

    async def page_js(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(SIGNAL_JS, headers={"Content-Type": "text/javascript"})


# Every "reconnecting" state is followed, synchronously, by the setTimeout of its wait: record both.
WATCH = """async () => {
  const { Signal } = await import("/static/lib/signal.js");
  window.waits = [];
  window.states = [];
  let next = false;
  const setTimer = window.setTimeout.bind(window);
  window.setTimeout = (fn, ms, ...rest) => {
    if (next) { window.waits.push(ms); next = false; }
    return setTimer(fn, ms, ...rest);
  };
  window.signal = new Signal({ getToken: async () => "a-token", resumeKey: "backoff-test" });
  window.signal.addEventListener("state", (e) => {
    window.states.push({ ...e.detail, at: Date.now() });
    if (e.detail.state === "reconnecting") next = true;
  });
  return (await window.signal.connect()).node;
}"""


def reconnecting(states: list[dict[str, Any]]) -> list[int]:
    return [s["attempt"] for s in states if s["state"] == "reconnecting"]


@pytest.mark.chromium
async def test_signal_js_backs_off_with_jitter_up_to_its_cap_and_a_lasting_session_starts_it_over(
        aiohttp_server: Callable[..., Awaitable[Any]]) -> None:
    failures = len(BACKOFF_MS) + 2  # two past the cap
    drops = 3
    door = Door(["stay", *["refuse"] * failures, "stay", "stay", *["drop"] * drops, "stay"])
    app = web.Application()
    app.router.add_get("/ws", door.ws)
    app.router.add_get("/static/lib/signal.js", door.page_js)
    server = await aiohttp_server(app)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=[*FLAGS, "--enable-automation"],
                                           timeout=STEP_S * 1000)
        try:
            page = await browser.new_page()
            await page.goto(str(server.make_url("/static/lib/signal.js")))
            assert await asyncio.wait_for(page.evaluate(WATCH), STEP_S) == "node-t"

            # 1. Lost right away (no STABLE_MS yet), then every connect refused: the waits grow step by
            # step to the cap, each a draw in [step / 2, step]; the page is back at the first "stay".
            await door.drop_open()
            async with asyncio.timeout(STEP_S):
                await door.stayed.wait()
            waits = await page.evaluate("window.waits")
            assert len(waits) == failures + 1, waits  # one wait before each attempt, none after the hello
            for n, ms in enumerate(waits):
                assert step(n) / 2 <= ms <= step(n), (n, ms, waits)
            capped = waits[len(BACKOFF_MS) - 1:]
            assert len(capped) >= 3 and max(capped) <= BACKOFF_MS[-1]  # the cap holds past the last step
            assert len(set(capped)) == len(capped), capped  # each wait drawn anew (jitter), not the step
            times = [at for _, at in door.seen]
            assert times[-1] - times[1] >= sum(waits[1:]) / 1000 * 0.99  # never sooner than asked
            states = await page.evaluate("window.states")
            assert reconnecting(states) == list(range(1, failures + 2))
            assert [p for p, _ in door.seen] == ["stay", *["refuse"] * failures, "stay"]

            # 2. That session lasts STABLE_MS, then is lost: the backoff starts over at the first step.
            await asyncio.sleep(STABLE_MS / 1000 + 1)
            await door.drop_open()
            async with asyncio.timeout(STEP_S):
                await door.stayed.wait()
            waits = (await page.evaluate("window.waits"))[failures + 1:]
            assert len(waits) == 1 and step(0) / 2 <= waits[0] <= step(0), waits

            # 3. Sessions dropped right after their hello do not reset it: it grows on from there.
            await door.drop_open()
            async with asyncio.timeout(STEP_S):
                await door.stayed.wait()
            waits = (await page.evaluate("window.waits"))[failures + 2:]
            assert len(waits) == drops + 1, waits
            for n, ms in enumerate(waits, start=1):
                assert step(n) / 2 <= ms <= step(n), (n, ms, waits)
            assert [p for p, _ in door.seen][-drops - 2:] == ["stay", *["drop"] * drops, "stay"]
            await page.evaluate("window.signal.close()")
        finally:
            await browser.close()


# After a lost socket, every bounded held-token connect arms a timer of LOST_NODE_MS or HELD_CONNECT_MS.
WATCH_HELD = """async ([a, b]) => {
  const { Signal } = await import("/static/lib/signal.js");
  window.bounds = [];
  window.tokens = 0;
  const setTimer = window.setTimeout.bind(window);
  window.setTimeout = (fn, ms, ...rest) => {
    if (ms === %d || ms === %d) window.bounds.push(ms);
    return setTimer(fn, ms, ...rest);
  };
  const getToken = async () => {
    window.tokens += 1;
    return { token: "a-token", expires_at: Math.floor(Date.now() / 1000) + 3600, node: a, alternates: [b] };
  };
  window.signal = new Signal({ getToken, resumeKey: "held-test" });
  window.moved = new Promise((resolve) => window.signal.addEventListener("state", (e) => {
    if (e.detail.state === "connected" && e.detail.node === "node-b") resolve(e.detail.node);
  }));
  return (await window.signal.connect()).node;
}"""


@pytest.mark.chromium
async def test_a_hung_lost_node_gets_a_short_try_then_the_alternate_takes_the_held_token(
        aiohttp_server: Callable[..., Awaitable[Any]]) -> None:
    """Node A drops the socket, then upgrades and never says ``hello`` (hung): once A upgraded it, the
    page's try of A with its kept token is bounded by ``LOST_NODE_MS`` (the timer it arms, not the
    clock), then node B (the token's alternate) takes the same token: one token request in all."""
    lost_ms, held_ms = constant("LOST_NODE_MS"), constant("HELD_CONNECT_MS")
    assert lost_ms < held_ms
    doors = Door(["stay", "stall"], "node-a"), Door(["stay"], "node-b")
    servers = []
    for door in doors:
        app = web.Application()
        app.router.add_get("/ws", door.ws)
        app.router.add_get("/static/lib/signal.js", door.page_js)
        servers.append(await aiohttp_server(app))
    a, b = (str(s.make_url("/")) for s in servers)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=[*FLAGS, "--enable-automation"],
                                           timeout=STEP_S * 1000)
        try:
            page = await browser.new_page()
            await page.goto(str(servers[0].make_url("/static/lib/signal.js")))
            script = WATCH_HELD % (lost_ms, held_ms)
            assert await asyncio.wait_for(page.evaluate(script, [a, b]), STEP_S) == "node-a"
            await doors[0].drop_open()
            assert await asyncio.wait_for(page.evaluate("window.moved"), STEP_S) == "node-b"
            # A's try: the connect's bound, then the hello's from its upgrade on; then B's connect
            assert await page.evaluate("window.bounds") == [held_ms, lost_ms, held_ms]
            assert await page.evaluate("window.tokens") == 1  # the alternate took the kept token
            assert [p for p, _ in doors[0].seen] == ["stay", "stall"] and doors[0].stalls_closed == 1
            assert [p for p, _ in doors[1].seen] == ["stay"]
            await page.evaluate("window.signal.close()")
        finally:
            await browser.close()
