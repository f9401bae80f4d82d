"""A drain moves a browser viewer make-before-break: the watch page (web/watch.js, web/lib/signal.js)
in Chromium watches a show published on node A (a real SDK broadcaster) from node B (an edge: the
cascade puts viewers elsewhere once A holds its cap); B is drained (``switchboard node drain``). The
page opens its new socket on A while the old one stays open, joins with a new peer connection while
the old one keeps playing, switches its ``<video>`` at the new one's first decoded frame, and only
then closes the old peer connection and the old socket; B exits once that socket left.

What the page did is read from the page itself, in order: an init script wraps ``RTCPeerConnection``
and ``WebSocket`` and logs, in one list, each one made and closed, and every video frame each peer
connection decodes (read from its track by a ``MediaStreamTrackProcessor``). The assertions are on
the order of that log, never on its times. The old code (the old socket closed at once, the old peer
connection closed before the new one existed) fails them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, Page, Route, async_playwright

from switchboard.registry import NodeRegistry
from switchboard_client import ApiClient
from tests.control_api import conftest as api_conftest
from tests.control_api.conftest import User
from tests.e2e.browser import CHROMIUM, FLAGS
from tests.signaling.conftest import STEP_S
from tests.signaling.node_processes import NodeProcess, node_starter  # noqa: F401 (the start_node fixture)
from tests.signaling.test_node_loss import _broadcast, _login, _nodes_on_api_key
from tests.signaling.test_nodes import switchboard

pytestmark = [pytest.mark.chromium]

make_api = api_conftest.make_api  # the control API's fixture (tests/control_api/conftest.py)
conformance = api_conftest.conformance  # make_api checks every answer with it

WAIT_S = STEP_S * 6
"""Upper bound for each step the page takes (tests never assert on timing; this machine is shared)."""

RECORDER = """(() => {
  const log = [];
  const pcs = [];
  window.__media = { log, pcs };
  // Every video frame a connection decodes, as it comes: a MediaStreamTrackProcessor is one more sink
  // of the received track (the page's <video> is another).
  const count = async (entry, track) => {
    const reader = new MediaStreamTrackProcessor({ track }).readable.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      value.close();
      if (entry.closed) continue;
      entry.frames += 1;
      log.push(["frame", pcs.indexOf(entry), entry.frames]);
    }
  };
  const NativePeer = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends NativePeer {
    constructor(...args) {
      super(...args);
      const entry = { pc: this, frames: 0, closed: false };
      this.__n = pcs.length;
      pcs.push(entry);
      log.push(["pc", this.__n]);
      this.addEventListener("track", (e) => {
        if (e.track.kind === "video") count(entry, e.track).catch((err) => log.push(["error", String(err)]));
      });
    }
    close() {
      const entry = pcs[this.__n];
      if (!entry.closed) {
        entry.closed = true;
        log.push(["pc-close", this.__n]);
      }
      return super.close();
    }
  };
  const NativeSocket = window.WebSocket;
  let sockets = 0;
  window.WebSocket = class extends NativeSocket {
    constructor(...args) {
      super(...args);
      const n = sockets++;
      log.push(["ws", n, new URL(String(args[0])).host]);
      this.addEventListener("close", () => log.push(["ws-close", n]));
    }
  };
})();"""


def _auth_script(user: User) -> str:
    auth = {"access_token": user.access, "refresh_token": user.refresh, "user_id": user.id}
    return f"sessionStorage.setItem('switchboard.auth', {json.dumps(json.dumps(auth))});"


async def _frames_advance(page: Page) -> None:
    """The page's ``<video>`` presents new frames (it plays, whatever connection feeds it)."""
    seen = await page.evaluate("document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames")
    await page.wait_for_function(
        f"document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames > {seen} + 10",
        timeout=WAIT_S * 1000)


async def _watch_page(browser: Browser, base: str, guest: User, at_port: int, room: str) -> tuple[Page, list[str]]:
    """The watch page of ``room`` (served by the node at ``at_port``; its /api calls go to the test's
    control API at ``base``), signed in as ``guest``, recording its connections; and its console."""
    context = await browser.new_context(bypass_csp=True)
    await context.add_init_script(RECORDER)
    await context.add_init_script(_auth_script(guest))

    async def to_api(route: Route) -> None:
        parts = urlsplit(route.request.url)
        if not parts.path.startswith("/api/"):
            await route.continue_()
            return
        query = f"?{parts.query}" if parts.query else ""
        await route.fulfill(response=await route.fetch(url=f"{base}{parts.path}{query}"))

    await context.route("**/api/**", to_api)
    page = await context.new_page()
    page.set_default_timeout(WAIT_S * 1000)
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    await page.goto(f"http://127.0.0.1:{at_port}/watch/{room}")
    await page.wait_for_function("window.__media.pcs.length > 0 && window.__media.pcs.at(-1).frames > 10")
    return page, console


async def _show_setup(make_api: Callable[..., Any], start_node: Callable[..., Any], redis: Any, tmp_path: Path,
                      count: int) -> tuple[dict[str, NodeProcess], str, ApiClient, str, User]:
    """``count`` nodes with the cascade on (the broadcaster fills its node: viewers go to edges) behind
    a control API; its base URL, a signed-in owner, the owner's room, and a guest account."""
    api = await make_api()
    nodes = await _nodes_on_api_key(api, start_node, redis, tmp_path, count, SWITCHBOARD_NODE_DRAIN_GRACE_S="30",
                                    SWITCHBOARD_CASCADE_SECRET="a-shared-secret-of-the-test-nodes",
                                    SWITCHBOARD_CASCADE_VIEWERS_PER_NODE="1")
    base = str(api.client.make_url("")).rstrip("/")
    owner = await _login(base, api)
    room = (await owner.create_room("drained")).room
    return nodes, base, owner, room, await api.user()


async def _full_origin(redis: Any) -> None:
    async with asyncio.timeout(WAIT_S):
        while not any(e.full for e in await NodeRegistry(redis).nodes()):  # noqa: ASYNC110 (polls Redis)
            await asyncio.sleep(0.2)  # the origin's load reaches the registry: viewers go to an edge


async def test_a_drained_nodes_browser_viewer_switches_to_the_new_node_before_the_old_one_stops(
        make_api: Callable[..., Any], start_node: Callable[..., Any], redis: Any, tmp_path: Path) -> None:
    nodes, base, owner, room, guest = await _show_setup(make_api, start_node, redis, tmp_path, 2)
    clients: list[Any] = []
    try:
        host, _ = await _broadcast(base, owner, room, clients)
        origin = next(n for n in nodes.values() if n.node_id == host.hello.node)
        edge = next(n for n in nodes.values() if n is not origin)
        await _full_origin(redis)

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=[*FLAGS, "--enable-automation"],
                                               timeout=WAIT_S * 1000)
            try:
                # The page comes from the origin node; its /api calls go to the test's control API.
                page, console = await _watch_page(browser, base, guest, origin.port, room)
                assert await page.evaluate("window.switchboard.signal.hello.node") == edge.node_id, console
                await _frames_advance(page)

                # The socket and the peer connection playing now (the last ones made): the old ones.
                old_ws, old_pc = await page.evaluate("""() => [
                    window.__media.log.filter((e) => e[0] === 'ws').length - 1, window.__media.pcs.length - 1]""")
                code, _, err = await switchboard(origin, "node", "drain", edge.node_id)
                assert code == 0, err
                # The new connection decodes, and the old socket is gone: both old and new code get
                # there; what came first is asserted below.
                await page.wait_for_function(f"""window.__media.pcs.length > {old_pc + 1}
                    && window.__media.pcs[{old_pc + 1}].frames > 0
                    && window.__media.log.some((e) => e[0] === 'ws-close' && e[1] === {old_ws})""")
                assert await asyncio.wait_for(edge.proc.wait(), WAIT_S) == 0  # the drained node left once empty
                log = [tuple(e) for e in await page.evaluate("window.__media.log")]

                def at(*entry: object) -> int:
                    return next(i for i, e in enumerate(log) if e[:len(entry)] == entry)

                new_pc, new_first, closed = at("pc", old_pc + 1), at("frame", old_pc + 1), at("pc-close", old_pc)
                # The old connection played on while the new one was made and connected...
                assert [e for e in log[new_pc:new_first] if e[:2] == ("frame", old_pc)], log
                # ...and the page closed it only once the new one had decoded a frame; then the old socket.
                new_ws = at("ws", old_ws + 1)
                assert log[new_ws][2] == f"127.0.0.1:{origin.port}", log  # the new socket: on the named node
                assert new_ws < new_pc < new_first < closed < at("ws-close", old_ws), log
                assert not [e for e in log if e[0] == "error"], log
                assert [e[0] for e in log].count("pc") == old_pc + 2, log  # one new connection, no retry

                # The video plays on, from the new node's connection.
                assert await page.evaluate("window.switchboard.signal.hello.node") == origin.node_id
                assert await page.evaluate("window.switchboard.moves") == 1, console
                assert await page.evaluate("""() => {
                    const track = document.getElementById('video').srcObject.getVideoTracks()[0];
                    return window.switchboard.pc === window.__media.pcs.at(-1).pc
                        && window.__media.pcs.at(-1).pc.getReceivers().some((r) => r.track === track);
                }""")
                await _frames_advance(page)
            finally:
                await browser.close()
    finally:
        for client in reversed(clients):
            await client.close()
        await owner.close()


async def test_a_browser_viewer_on_an_edge_plays_on_without_moving_when_the_shows_origin_is_drained(
        make_api: Callable[..., Any], start_node: Callable[..., Any], redis: Any, tmp_path: Path) -> None:
    """Three nodes: the broadcaster (SDK) on A, the watch page on B (an edge); A is drained. The
    broadcaster moves (told last) to the node the drain names, C, the one with room (B holds its cap:
    the page); the show goes on there, A hands it over and B pulls it from C at once. The page never
    leaves B: no new socket, no new peer connection; B's SFU takes the page's consumers over in place
    (sfu/orphans.py: the same track, no renegotiation) and its ``<video>`` plays on after A exited.
    On the code before, A ended the show on B (``show.ended``, ``owner left``) when its broadcaster's
    session went."""
    nodes, base, owner, room, guest = await _show_setup(make_api, start_node, redis, tmp_path, 3)
    clients: list[Any] = []
    try:
        host, show = await _broadcast(base, owner, room, clients)
        origin = next(n for n in nodes.values() if n.node_id == host.hello.node)
        await _full_origin(redis)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=[*FLAGS, "--enable-automation"],
                                               timeout=WAIT_S * 1000)
            try:
                page, console = await _watch_page(browser, base, guest, origin.port, room)
                edge = await page.evaluate("window.switchboard.signal.hello.node")
                assert edge != origin.node_id, console
                await _frames_advance(page)
                async with asyncio.timeout(WAIT_S):  # B's load reaches the registry: the drain ranks C first
                    while not any(e.full for e in await NodeRegistry(redis).nodes() if e.id == edge):  # noqa: ASYNC110
                        await asyncio.sleep(0.2)
                before = await page.evaluate("window.__media.log.length")
                code, _, err = await switchboard(origin, "node", "drain", origin.node_id)
                assert code == 0, err
                assert await asyncio.wait_for(origin.proc.wait(), WAIT_S) == 0  # the drained origin left
                async with asyncio.timeout(WAIT_S):
                    await show.rejoined.wait()
                assert host.hello.node not in (origin.node_id, edge)  # the broadcaster went on elsewhere
                await _frames_advance(page)  # the page's video plays on, from the show's new origin
                log = [tuple(e) for e in await page.evaluate("window.__media.log")]
                assert not [e for e in log[before:] if e[0] in ("ws", "pc", "ws-close", "pc-close")], log
                assert await page.evaluate("window.switchboard.signal.hello.node") == edge
                assert await page.evaluate("window.switchboard.moves") in (0, None), console
                assert not [line for line in console if "ended" in line.lower()], console
            finally:
                await browser.close()
    finally:
        for client in reversed(clients):
            await client.close()
        await owner.close()
