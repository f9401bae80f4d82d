"""``switchboard node drain``: a real node process sends its clients to another node (a ``reconnect``
naming it), leaves the registry and exits once they have moved; SIGTERM does the same."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from playwright.async_api import async_playwright

from signaling.drain import targets
from switchboard.registry import NodeEntry, NodeRegistry
from switchboard.wire import Codec
from tests.e2e.browser import CHROMIUM, FLAGS
from tests.signaling.conftest import STEP_S, Peer
from tests.signaling.node_processes import node_starter  # noqa: F401 (the start_node fixture)
from tests.signaling.test_nodes import GONE_S, registered, switchboard

GRACE_S = 20
"""The stopped node's ``node.drain_grace_s``: its deadline."""


async def registered_count(redis: Any, count: int) -> list[NodeEntry]:
    """The registry once it holds ``count`` nodes (ids unknown before a socket's hello)."""
    async with asyncio.timeout(GONE_S):
        while True:
            entries = await NodeRegistry(redis).nodes()
            if len(entries) == count:
                return entries
            await asyncio.sleep(0.1)


async def test_a_drained_node_sends_its_clients_to_another_and_exits(start_node: Callable[..., Any],
                                                                     token: Callable[..., str], redis: Any) -> None:
    stay, leave = await asyncio.gather(start_node(), start_node(SWITCHBOARD_NODE_DRAIN_GRACE_S="30"))
    async with aiohttp.ClientSession() as http:
        here = await leave.connect(http, token("carol"))
        await stay.connect(http, token("dave"))
        await registered(redis, {stay.node_id, leave.node_id})
        code, out, _ = await switchboard(stay, "node", "drain", leave.node_id)
        assert code == 0 and leave.node_id in out
        moved = await here.expect("reconnect")
        assert moved == {"type": "reconnect", "url": f"http://127.0.0.1:{stay.port}", "node": stay.node_id,
                         "reason": "drain"}
        await here.ws.close()  # the client follows it: the drained node is empty and stops
        again = await stay.connect(http, token("carol"))
        assert again.hello["node"] == stay.node_id  # type: ignore[attr-defined]
        assert await asyncio.wait_for(leave.proc.wait(), STEP_S * 4) == 0
        await registered(redis, {stay.node_id})
        code, _, err = await switchboard(stay, "node", "drain", "node_nobody")
        assert code == 1 and "no node" in err
        # SIGTERM (an upgrade, docker stop) drains the same way, within node.drain_grace_s.
        late = await start_node(SWITCHBOARD_NODE_DRAIN_GRACE_S="30")
        there = await late.connect(http, token("erin"))
        await registered(redis, {stay.node_id, late.node_id})
        late.proc.terminate()
        assert (await there.expect("reconnect"))["url"] == f"http://127.0.0.1:{stay.port}"
        await there.ws.close()
        assert await asyncio.wait_for(late.proc.wait(), STEP_S * 4) == 0
        await registered(redis, {stay.node_id})


async def test_a_node_stopped_by_sigterm_exits_once_its_client_followed_reconnect_not_at_the_deadline(
        start_node: Callable[..., Any], token: Callable[..., str], redis: Any) -> None:
    """SIGTERM (``docker stop``): the node drains and its one client follows the ``reconnect`` by closing
    its socket. The node sees that close (it still reads its sockets while it drains) and exits then: its
    drain ends with "every socket left", never "grace period over". The client waits up to a minute for
    the node's answer to its close frame, longer than the grace period: a node that did not read it
    would keep the socket until its deadline (as it did: docs/scaling.md, "Drain")."""
    stay = await start_node()
    leaving = await start_node(SWITCHBOARD_NODE_DRAIN_GRACE_S=str(GRACE_S), SWITCHBOARD_LOG_LEVEL="INFO")
    async with aiohttp.ClientSession() as http:
        await stay.connect(http, token("dave"))
        ws = await http.ws_connect(f"http://127.0.0.1:{leaving.port}/ws", params={"token": token("erin")},
                                   timeout=aiohttp.ClientWSTimeout(ws_close=GRACE_S * 3))
        client = Peer(ws, Codec.JSON)
        leaving.node_id = (await client.expect("hello"))["node"]
        await registered(redis, {stay.node_id, leaving.node_id})
        leaving.proc.terminate()
        assert (await client.expect("reconnect"))["node"] == stay.node_id
        await ws.close()  # answered by the draining node
        async with asyncio.timeout(GRACE_S * 4):  # only a bound against hanging: not what is asserted
            assert await leaving.proc.wait() == 0
            lines = await leaving.logs()
    assert "drain: every socket left" in lines and "grace period over" not in lines, lines[-3000:]
    await registered(redis, {stay.node_id})


async def test_a_drain_spreads_its_sessions_over_the_other_nodes_each_user_to_its_own(
        start_node: Callable[..., Any], token: Callable[..., str], redis: Any) -> None:
    """Three real nodes; 16 users on the one drained (one of them with two sockets). Each session's
    ``reconnect`` names its user's first choice of the other nodes (placement's ``alternates``
    ranking, a hash of the user and the node): both other nodes get some (before, every session was
    sent to the one least loaded node), and both sockets of one user are sent to the same node."""
    first, second, leave = await asyncio.gather(start_node(), start_node(),
                                                start_node(SWITCHBOARD_NODE_DRAIN_GRACE_S="30"))
    users = [f"spread-{i}" for i in range(16)]
    async with aiohttp.ClientSession() as http:
        await first.connect(http, token("anchor-1"))
        await second.connect(http, token("anchor-2"))
        here = [await leave.connect(http, token(u)) for u in users]
        twice = await leave.connect(http, token(users[0]))
        await registered(redis, {first.node_id, second.node_id, leave.node_id})
        code, _, _ = await switchboard(first, "node", "drain", leave.node_id)
        assert code == 0
        sent = [(await peer.expect("reconnect"))["node"] for peer in here]
        again = (await twice.expect("reconnect"))["node"]
        for peer in [*here, twice]:
            await peer.ws.close()
        assert await asyncio.wait_for(leave.proc.wait(), STEP_S * 4) == 0
    assert set(sent) == {first.node_id, second.node_id}, sent
    assert again == sent[0], "one user's sessions are sent to one node"


def test_a_drains_targets_put_full_nodes_last_while_the_others_have_room() -> None:
    """:func:`signaling.drain.targets`: a node at its cap is named only when the nodes below theirs
    cannot take the drained node's sessions; then every user's own hash decides (the burst splits)."""
    def entry(node_id: str, viewers: int, draining: bool = False) -> NodeEntry:
        return NodeEntry(id=node_id, url=f"http://{node_id}", media_address="", viewer_cap=10, viewers=viewers,
                         draining=draining)

    users = [f"u{i}" for i in range(40)]
    roomy = [entry("node_gone", 5, draining=True), entry("node_full", 10), entry("node_free", 0),
             entry("node_other_draining", 0, draining=True)]
    pick = targets(roomy, "node_gone")
    assert {pick(u).id for u in users} == {"node_free"}  # type: ignore[union-attr]
    crowded = [entry("node_gone", 10, draining=True), entry("node_full", 10), entry("node_almost", 9)]
    pick = targets(crowded, "node_gone")
    assert {pick(u).id for u in users} == {"node_full", "node_almost"}  # type: ignore[union-attr]
    assert targets([entry("node_gone", 3, draining=True)], "node_gone")("u1") is None


@pytest.mark.chromium
async def test_signal_js_opens_the_named_node_and_follows_reconnect(start_node: Callable[..., Any],
                                                                     token: Callable[..., str], redis: Any) -> None:
    """The browser library in Chromium: its socket opens at the node a token answer names (not the
    page's host), and moves to the node a ``reconnect`` names when that node drains."""
    first, second = await asyncio.gather(start_node(SWITCHBOARD_NODE_DRAIN_GRACE_S="30"), start_node())
    urls = {f"http://127.0.0.1:{n.port}": n for n in (first, second)}
    entries = await registered_count(redis, 2)
    for entry in entries:
        urls[entry.url].node_id = entry.id
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=[*FLAGS, "--enable-automation"],
                                           timeout=STEP_S * 6 * 1000)
        try:
            # The pages' CSP lets them connect to their own host only (docs/scaling.md: "Not yet"); this
            # tests the library itself, from a document of the second node's origin.
            page = await (await browser.new_context(bypass_csp=True)).new_page()
            await page.goto(f"http://127.0.0.1:{second.port}/static/lib/signal.js")
            on = await asyncio.wait_for(page.evaluate("""async ([token, node]) => {
                const { Signal } = await import("/static/lib/signal.js");
                window.signal = new Signal({ getToken: async () => ({ token, node }), resumeKey: "drain-test" });
                return (await window.signal.connect()).node;
            }""", [token("ivy"), f"http://127.0.0.1:{first.port}"]), STEP_S * 2)
            assert on == first.node_id
            code, _, _ = await switchboard(second, "node", "drain", first.node_id)
            assert code == 0
            await page.wait_for_function(f"window.signal.hello && window.signal.hello.node === {second.node_id!r}",
                                         timeout=STEP_S * 6 * 1000)
            assert await page.evaluate("window.signal.node") == f"http://127.0.0.1:{second.port}"
            assert await asyncio.wait_for(first.proc.wait(), STEP_S * 4) == 0
        finally:
            await browser.close()
