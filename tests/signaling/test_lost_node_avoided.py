"""A client that lost its node names it to the API (``avoid``), which places it elsewhere at once,
though the registry lists the dead node for ``node.registry_ttl_s`` more (docs/scaling.md, "Node loss").

Real ``switchboard node`` processes whose registry entries outlive them by 30 s (so a client that
waited for the registry to forget its dead node would be refused until its resume window ran out),
the real control API and the SDK (switchboard_client), and Chromium running ``web/lib/signal.js``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import async_playwright

from switchboard.placement import Placement
from switchboard.registry import NodeRegistry
from switchboard_client import NodeClient
from tests.e2e.browser import CHROMIUM, FLAGS
from tests.signaling import test_node_loss as loss
from tests.signaling.conftest import STEP_S
from tests.signaling.node_processes import node_starter  # noqa: F401 (the start_node fixture)
from tests.signaling.test_drain import registered_count
from tests.signaling.test_node_loss import BACK_S, _broadcast, _decoding, _kill, _login, _nodes_on_api_key, _view

make_api = loss.make_api  # the control API's fixture
conformance = loss.conformance  # make_api checks every answer with it
redis_url = loss.redis_url  # one Redis

LONG_TTL = {"SWITCHBOARD_NODE_REGISTRY_TTL_S": "30"}
"""A dead node stays in the registry for 30 s: longer than the SDK's resume window (15 s)."""


async def test_a_broadcaster_that_lost_its_origin_moves_the_show_while_the_registry_lists_it(
        make_api: Callable[..., Any], start_node: Callable[..., Any], redis: Any, tmp_path: Path) -> None:
    """The show's node is killed. The broadcaster's SDK tries it (refused), then names it in its token
    request: the API moves the room to the live node at once and the broadcaster publishes there; the
    viewer follows the room's new pin and decodes again, all while the registry still lists the dead
    node."""
    api = await make_api()
    nodes = await _nodes_on_api_key(api, start_node, redis, tmp_path, 2, **LONG_TTL)
    base = str(api.client.make_url("")).rstrip("/")
    owner, guest = await _login(base, api), await _login(base, api)
    room = (await owner.create_room("moving on")).room
    clients: list[Any] = []
    steps: list[tuple[str, dict[str, Any]]] = []
    try:
        host, show = await _broadcast(base, owner, room, clients)
        host.tracer = lambda step, fields: steps.append((step, fields))
        viewing = await _view(base, guest, room, clients)
        async with asyncio.timeout(BACK_S):
            first = await _decoding(viewing)
        origin = next(n for n in nodes.values() if n.node_id == host.hello.node)
        survivor = next(n for n in nodes.values() if n is not origin)
        _kill(origin)
        await origin.proc.wait()
        async with asyncio.timeout(BACK_S):
            await asyncio.gather(show.rejoined.wait(), viewing.rejoined.wait())
        async with asyncio.timeout(BACK_S):
            again = await _decoding(viewing)
        assert host.hello.node == survivor.node_id and viewing.node.hello.node == survivor.node_id
        assert origin.node_id in {e.id for e in await NodeRegistry(redis).nodes()}  # still listed
        failed = [f for s, f in steps if s == "connect_failed"]
        assert failed and all(f["url"].startswith(f"http://127.0.0.1:{origin.port}".replace("http", "ws"))
                              for f in failed)
        connects = [(s, f) for s, f in steps if s not in ("show_create", "published", "publish_connected")]
        assert connects[-1][0] == "hello" and connects[-1][1]["node"] == survivor.node_id
        assert again.count.frames > 0 and show.rejoins == 1 and viewing.rejoins == 1
        for counter in (first, again):
            await counter.close()
    finally:
        for client in reversed(clients):
            await client.close()
        await owner.close()
        await guest.close()


async def test_an_edges_viewer_comes_back_on_an_alternate_without_asking_the_api(
        make_api: Callable[..., Any], start_node: Callable[..., Any], redis: Any, tmp_path: Path) -> None:
    """The cascade on, the origin full: the viewer is placed on the edge, and its token answer names the
    origin as its alternate. The edge is killed (the registry lists it 30 s more): the SDK tries the
    edge again with the token it holds (refused), then the alternate with the same token, and the
    viewer decodes there again; no token was asked of the API meanwhile."""
    api = await make_api()
    nodes = await _nodes_on_api_key(api, start_node, redis, tmp_path, 2, **LONG_TTL,
                                    SWITCHBOARD_CASCADE_SECRET="a-shared-secret-of-the-test-nodes",
                                    SWITCHBOARD_CASCADE_VIEWERS_PER_NODE="1")
    base = str(api.client.make_url("")).rstrip("/")
    owner, guest = await _login(base, api), await _login(base, api)
    room = (await owner.create_room("straight to the alternate")).room
    clients: list[Any] = []
    steps: list[tuple[str, dict[str, Any]]] = []
    try:
        host, _ = await _broadcast(base, owner, room, clients)
        viewing = await _view(base, guest, room, clients)
        async with asyncio.timeout(BACK_S):
            first = await _decoding(viewing)
        origin = next(n for n in nodes.values() if n.node_id == host.hello.node)
        edge = next(n for n in nodes.values() if n is not origin)
        assert viewing.node.hello.node == edge.node_id
        held = viewing.node._held
        assert held is not None and held.alternates == (f"http://127.0.0.1:{origin.port}",)
        viewing.node.tracer = lambda step, fields: steps.append((step, fields))
        _kill(edge)
        await edge.proc.wait()
        async with asyncio.timeout(BACK_S):
            await viewing.rejoined.wait()
            again = await _decoding(viewing)
        assert viewing.node.hello.node == origin.node_id and again.count.frames > 0
        assert edge.node_id in {e.id for e in await NodeRegistry(redis).nodes()}  # still listed
        tokens = [f for s, f in steps if s == "token"]
        assert [t["url"].split("/")[2] for t in tokens] == [f"127.0.0.1:{edge.port}", f"127.0.0.1:{origin.port}"]
        assert all(t.get("held") for t in tokens)  # both with the held token: the API was not asked
        assert [s for s, _ in steps].count("connect_failed") == 1
        for counter in (first, again):
            await counter.close()
    finally:
        for client in reversed(clients):
            await client.close()
        await owner.close()
        await guest.close()


async def test_the_sdk_names_the_node_it_lost_only_after_a_connect_there_failed(
        make_api: Callable[..., Any], start_node: Callable[..., Any], redis: Any, tmp_path: Path) -> None:
    """A socket that drops while its node lives: the connect there succeeds, so the client comes back
    on the same node and names nothing to the API (``avoid`` stays unset)."""
    api = await make_api()
    await _nodes_on_api_key(api, start_node, redis, tmp_path, 1, **LONG_TTL)
    base = str(api.client.make_url("")).rstrip("/")
    user = await _login(base, api)
    tokens = user.token_source()
    client = NodeClient(base, tokens)
    try:
        hello = await client.open()
        assert client._ws is not None
        await client._ws.close()  # the socket drops; the node lives
        async with asyncio.timeout(BACK_S):
            while client.reconnects == 0 or client._ws is None or client._ws.closed:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert client.hello.node == hello.node and client.moves == 0 and tokens.avoid is None
    finally:
        await client.close()
        await user.close()


@pytest.mark.chromium
async def test_signal_js_names_the_node_it_lost_and_is_placed_elsewhere_at_once(
        start_node: Callable[..., Any], token: Callable[..., str], redis: Any) -> None:
    """``signal.js`` in Chromium, its getToken backed by the API's placement preferring the victim's
    region: after the victim is killed (and while the registry lists it) the first connect goes there
    and fails; the next asks with ``{avoid: <victim>}`` and opens the other node."""
    victim_node = await start_node(SWITCHBOARD_NODE_REGION="eu", **LONG_TTL)
    other = await start_node(SWITCHBOARD_NODE_REGION="us", **LONG_TTL)
    for entry in await registered_count(redis, 2):
        for n in (victim_node, other):
            if entry.url == f"http://127.0.0.1:{n.port}":
                n.node_id = entry.id
    placement = Placement(redis)
    hints: list[dict[str, Any]] = []

    async def ticket(hint: dict[str, Any]) -> dict[str, Any]:
        hints.append(hint)
        entry = await placement.for_session("eu", avoid=str(hint.get("avoid") or ""))
        return {"token": token("ivy"), "node": entry.url if entry is not None else None}

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=[*FLAGS, "--enable-automation"],
                                           timeout=STEP_S * 6 * 1000)
        try:
            page, on = await _signal_page(browser, other.port, ticket, "avoid-test")
            assert on == victim_node.node_id  # the region's node
            _kill(victim_node)
            await victim_node.proc.wait()
            await page.wait_for_function(f"window.signal.hello.node === {other.node_id!r}", timeout=BACK_S * 1000)
            assert victim_node.node_id in {e.id for e in await NodeRegistry(redis).nodes()}  # still listed
            assert {"avoid": victim_node.node_id} in hints and hints[0] == {}
            assert hints.index({"avoid": victim_node.node_id}) >= 2  # the first reconnect tried the victim
            states = await page.evaluate("window.states")
            assert states[-1] == {"state": "connected", "resumed": False, "moved": True, "node": other.node_id}
            assert await page.evaluate("window.signal.avoid") is None
        finally:
            await browser.close()


@pytest.mark.chromium
async def test_signal_js_goes_to_the_alternate_with_the_token_it_holds(
        start_node: Callable[..., Any], token: Callable[..., str], redis: Any) -> None:
    """``signal.js`` in Chromium, its getToken answering like the API for a viewer (``expires_at``,
    ``node``, ``alternates``): after its node is killed (the registry lists it 30 s more) the page
    tries that node again with the token it holds, then the alternate, and is connected there
    without calling getToken again."""
    victim_node = await start_node(**LONG_TTL)
    other = await start_node(**LONG_TTL)
    for entry in await registered_count(redis, 2):
        for n in (victim_node, other):
            if entry.url == f"http://127.0.0.1:{n.port}":
                n.node_id = entry.id
    hints: list[dict[str, Any]] = []

    async def ticket(hint: dict[str, Any]) -> dict[str, Any]:
        hints.append(hint)
        return {"token": token("ivy"), "expires_at": int(time.time()) + 300,
                "node": f"http://127.0.0.1:{victim_node.port}", "alternates": [f"http://127.0.0.1:{other.port}"]}

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=[*FLAGS, "--enable-automation"],
                                           timeout=STEP_S * 6 * 1000)
        try:
            page, on = await _signal_page(browser, other.port, ticket, "held-test")
            assert on == victim_node.node_id
            _kill(victim_node)
            await victim_node.proc.wait()
            await page.wait_for_function(f"window.signal.hello.node === {other.node_id!r}", timeout=BACK_S * 1000)
            assert hints == [{}]  # the only token asked was the first: the alternate got the held one
            states = await page.evaluate("window.states")
            assert states[-1] == {"state": "connected", "resumed": False, "moved": True, "node": other.node_id}
        finally:
            await browser.close()


async def _signal_page(browser: Any, port: int, ticket: Callable[..., Any], key: str) -> tuple[Any, str]:
    """A page on node ``port`` running ``signal.js`` with ``ticket`` as its getToken; connected: its node id."""
    page = await (await browser.new_context(bypass_csp=True)).new_page()
    await page.expose_function("ticket", ticket)
    await page.goto(f"http://127.0.0.1:{port}/static/lib/signal.js")
    on = await asyncio.wait_for(page.evaluate("""async (key) => {
        const { Signal } = await import("/static/lib/signal.js");
        window.states = [];
        window.signal = new Signal({ getToken: (hint) => window.ticket(hint || {}), resumeKey: key });
        window.signal.addEventListener("state", (e) => window.states.push(e.detail));
        return (await window.signal.connect()).node;
    }""", key), STEP_S * 2)
    return page, str(on)


@pytest.mark.chromium
async def test_signal_js_gives_up_a_hung_alternate_and_goes_to_the_next(
        start_node: Callable[..., Any], token: Callable[..., str], redis: Any) -> None:
    """The first alternate accepts the TCP connect and never answers (a hung box): the page's connect
    there with the held token times out, and it goes on to the next alternate, without getToken."""
    victim_node = await start_node(**LONG_TTL)
    other = await start_node(**LONG_TTL)
    for entry in await registered_count(redis, 2):
        for n in (victim_node, other):
            if entry.url == f"http://127.0.0.1:{n.port}":
                n.node_id = entry.id
    held: list[asyncio.StreamWriter] = []

    async def keep(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    hung = await asyncio.start_server(keep, "127.0.0.1", 0)
    hung_url = f"http://127.0.0.1:{hung.sockets[0].getsockname()[1]}"
    hints: list[dict[str, Any]] = []

    async def ticket(hint: dict[str, Any]) -> dict[str, Any]:
        hints.append(hint)
        return {"token": token("ivy"), "expires_at": int(time.time()) + 300,
                "node": f"http://127.0.0.1:{victim_node.port}",
                "alternates": [hung_url, f"http://127.0.0.1:{other.port}"]}

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=[*FLAGS, "--enable-automation"],
                                           timeout=STEP_S * 6 * 1000)
        try:
            page, on = await _signal_page(browser, other.port, ticket, "hung-test")
            assert on == victim_node.node_id
            _kill(victim_node)
            await victim_node.proc.wait()
            await page.wait_for_function(f"window.signal.hello.node === {other.node_id!r}", timeout=BACK_S * 1000)
            assert hints == [{}] and held  # the hung alternate was tried, with the held token
        finally:
            await browser.close()
            hung.close()
            for writer in held:
                writer.close()


@pytest.mark.chromium
async def test_signal_js_close_forgets_the_held_token(
        start_node: Callable[..., Any], token: Callable[..., str], redis: Any) -> None:
    """The page closes its Signal while it is reconnecting with the held token (its node was killed),
    then connects again: that connect asks getToken (a new token and node), never the old ones."""
    victim_node = await start_node(**LONG_TTL)
    other = await start_node(**LONG_TTL)
    for entry in await registered_count(redis, 2):
        for n in (victim_node, other):
            if entry.url == f"http://127.0.0.1:{n.port}":
                n.node_id = entry.id
    hints: list[dict[str, Any]] = []

    async def ticket(hint: dict[str, Any]) -> dict[str, Any]:
        hints.append(hint)
        node = victim_node if len(hints) == 1 else other
        return {"token": token("ivy"), "expires_at": int(time.time()) + 300,
                "node": f"http://127.0.0.1:{node.port}", "alternates": [f"http://127.0.0.1:{other.port}"]}

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=[*FLAGS, "--enable-automation"],
                                           timeout=STEP_S * 6 * 1000)
        try:
            page, on = await _signal_page(browser, other.port, ticket, "close-test")
            assert on == victim_node.node_id
            # Closed as the reconnect starts waiting out its delay, and connected again at once: the
            # waiting reconnect must give up (before, connect() cleared closedByUs and it went on: a
            # third getToken, seen as a flake when the test's connect came late enough).
            await page.evaluate("""() => {
                window.signal.addEventListener("state", (e) => {
                  if (e.detail.state === "reconnecting" && !window.closedOnce) {
                    window.closedOnce = true;
                    window.signal.close();
                    window.again = window.signal.connect().then((hello) => hello.node);
                  }
                });
            }""")
            _kill(victim_node)
            await victim_node.proc.wait()
            await page.wait_for_function("window.closedOnce === true", timeout=BACK_S * 1000)
            again = await asyncio.wait_for(page.evaluate("async () => await window.again"), STEP_S * 2)
            await asyncio.sleep(2)  # a stray reconnect's delay (at most 1 s here) runs out meanwhile
            assert again == other.node_id and len(hints) == 2, hints
        finally:
            await browser.close()
