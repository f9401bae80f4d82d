"""A node dies (SIGKILL): its clients come back through the control API on a live node.

Real ``switchboard node`` processes, the real control API (in this process, on the embedded
Postgres and the same Redis) and SDK clients (switchboard_client) doing what docs/scaling.md says a
client does after a lost node: ask the API again (it names a live node once the registry forgot the
dead one), start a new session there and join the show again. The broadcaster's client publishes
again on the node the API placed the room on; its viewers decode frames again. A show whose
broadcaster does not come back ends for its viewers with the reason ``node lost``.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from playwright.async_api import async_playwright

import switchboard_client.show as sdk_show
from switchboard.placement import Placement
from switchboard.registry import NodeRegistry
from switchboard_client import ApiClient, NodeClient, publish_show, view_show
from switchboard_client.media import FrameCounter, TestPattern
from tests.conftest import REDIS_KINDS, redis_url_of
from tests.control_api import conftest as api_conftest
from tests.control_api.conftest import Api
from tests.e2e.browser import CHROMIUM, FLAGS
from tests.signaling.conftest import STEP_S
from tests.signaling.node_processes import NodeProcess, node_starter  # noqa: F401 (the start_node fixture)
from tests.signaling.test_drain import registered_count
from tests.signaling.test_nodes import registered, switchboard

make_api = api_conftest.make_api  # the control API's fixture (tests/control_api/conftest.py)
conformance = api_conftest.conformance  # make_api checks every answer with it


@pytest.fixture
def redis_url(request: pytest.FixtureRequest) -> str:
    """One Redis; a test parametrized with ``REDIS_KINDS`` (indirect), or with ``cluster`` for
    ``redis_url``, also runs on the Redis Cluster (nodes and the control API alike)."""
    if getattr(request, "param", None):
        return redis_url_of(request)
    return str(request.getfixturevalue("redis_server").url)


BACK_S = STEP_S * 6
"""Upper bound for a client of a killed node to decode again elsewhere (the issue's target is 5 s;
tests never assert on timing, and this machine is shared)."""


async def _nodes_on_api_key(api: Api, start_node: Callable[..., Any], redis: Any, tmp_path: Path,
                            count: int, **settings: str) -> dict[str, NodeProcess]:
    """``count`` nodes that accept the API's tokens, by base URL (ids filled in from the registry)."""
    public = tmp_path / "api.pub.pem"
    public.write_bytes(api.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo))
    nodes = await asyncio.gather(*(start_node(SWITCHBOARD_TOKENS_PUBLIC_KEY_FILE=str(public), **settings)
                                   for _ in range(count)))
    by_url = {f"http://127.0.0.1:{n.port}": n for n in nodes}
    for entry in await registered_count(redis, count):
        by_url[entry.url].node_id = entry.id
    return by_url


async def _login(base: str, api: Api) -> ApiClient:
    user = await api.user()
    client = ApiClient(base)
    await client.open()
    await client.login(user.email, user.password)
    return client


async def _broadcast(base: str, owner: ApiClient, room: str,
                     clients: list[Any]) -> tuple[NodeClient, sdk_show.Broadcast]:
    """``owner``'s node client publishing a test pattern in ``room``: (the client, its show); both are
    added to ``clients`` (closed by the test, last first)."""
    host = NodeClient(base, owner.token_source(room, "broadcaster"))
    clients.append(host)
    await host.open()
    show = await publish_show(host, room, [TestPattern()])
    clients.append(show)
    return host, show


async def _view(base: str, guest: ApiClient, room: str, clients: list[Any]) -> sdk_show.Viewing:
    """``guest``'s node client viewing the show in ``room``; the client and the viewing are added to
    ``clients``."""
    node = NodeClient(base, guest.token_source(room))
    clients.append(node)
    await node.open()
    viewing = await view_show(node, room)
    clients.append(viewing)
    return viewing


async def _decoding(viewing: sdk_show.Viewing) -> FrameCounter:
    counter = FrameCounter(await viewing.track("video"))
    await counter.first_frame()
    return counter


def _kill(node: NodeProcess) -> None:
    os.kill(node.proc.pid, signal.SIGKILL)


@pytest.mark.parametrize(("loss", "redis_url"), [("kill", "single"), ("drain", "single"),
                                                    pytest.param("kill", "cluster", marks=pytest.mark.redis_cluster)],
                         indirect=["redis_url"])
async def test_a_lost_nodes_viewers_decode_again_on_a_live_node(
        make_api: Callable[..., Any], start_node: Callable[..., Any], redis: Any, tmp_path: Path, loss: str) -> None:
    """``kill``: SIGKILL, the sockets just drop. ``drain``: ``switchboard node drain``, the node names
    the other one in a ``reconnect``, which the SDK follows at once."""
    api = await make_api()
    nodes = await _nodes_on_api_key(api, start_node, redis, tmp_path, 2, SWITCHBOARD_NODE_DRAIN_GRACE_S="30")
    base = str(api.client.make_url("")).rstrip("/")
    owner = await _login(base, api)
    room = (await owner.create_room("lost and found")).room
    guests = [await _login(base, api) for _ in range(2)]
    clients: list[Any] = []
    try:
        host, show = await _broadcast(base, owner, room, clients)
        viewings = [await _view(base, guest, room, clients) for guest in guests]
        async with asyncio.timeout(BACK_S):
            counters = [await _decoding(v) for v in viewings]
        origin = next(n for n in nodes.values() if n.node_id == host.hello.node)
        assert {v.node.hello.node for v in viewings} == {origin.node_id}  # placement: viewers go to the origin
        survivor = next(n for n in nodes.values() if n is not origin)

        if loss == "kill":
            _kill(origin)
            await origin.proc.wait()
        else:
            code, _, err = await switchboard(survivor, "node", "drain", origin.node_id)
            assert code == 0, err
        # The registry forgets the dead node (its entry's TTL; a drained one leaves once its clients
        # moved); the API then names the survivor.
        await registered(redis, {survivor.node_id})
        async with asyncio.timeout(BACK_S):
            await asyncio.gather(show.rejoined.wait(), *(v.rejoined.wait() for v in viewings))
        async with asyncio.timeout(BACK_S):
            again = [await _decoding(v) for v in viewings]
        assert host.hello.node == survivor.node_id and not host.hello.resumed
        assert {v.node.hello.node for v in viewings} == {survivor.node_id}
        assert all(c.count.frames > 0 for c in again) and all(v.node.moves == 1 for v in viewings)
        assert show.rejoins == 1 and all(v.rejoins == 1 and v.ended is None for v in viewings)
        for counter in [*counters, *again]:
            await counter.close()
    finally:
        for client in reversed(clients):
            await client.close()
        for api_client in [owner, *guests]:
            await api_client.close()


async def test_a_show_whose_broadcaster_never_comes_back_ends_with_a_reason(
        make_api: Callable[..., Any], start_node: Callable[..., Any], redis: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sdk_show, "REJOIN_WINDOW_S", 2.0)
    api = await make_api()
    nodes = await _nodes_on_api_key(api, start_node, redis, tmp_path, 2)
    base = str(api.client.make_url("")).rstrip("/")
    owner, guest = await _login(base, api), await _login(base, api)
    room = (await owner.create_room("gone")).room
    host = NodeClient(base, owner.token_source(room, "broadcaster"))
    viewer = NodeClient(base, guest.token_source(room))
    try:
        await host.open()
        await publish_show(host, room, [TestPattern()])  # a raw host: its client is closed below, never back
        await viewer.open()
        viewing = await view_show(viewer, room)
        ended = viewer.events("show.ended")
        async with asyncio.timeout(BACK_S):
            await _decoding(viewing)
        origin = next(n for n in nodes.values() if n.node_id == viewer.hello.node)
        _kill(origin)
        await host.close()  # the broadcaster is gone for good (its page closed with the node)
        async with asyncio.timeout(BACK_S * 2):
            event = await ended.next()
        assert event == {"type": "show.ended", "room": room, "reason": "node lost"}
        assert viewing.ended == event and viewing.rejoins == 0 and viewer.moves == 1
        assert not viewer.closed  # the socket lives on, on the live node
    finally:
        await viewer.close()
        await host.close()
        await owner.close()
        await guest.close()


@pytest.mark.chromium
@pytest.mark.parametrize("redis_url", REDIS_KINDS, indirect=True)
async def test_signal_js_comes_back_on_a_live_node_after_its_node_is_killed(
        start_node: Callable[..., Any], token: Callable[..., str], redis: Any) -> None:
    """The browser library in Chromium: its socket's node dies (SIGKILL); it backs off, asks its
    ``getToken`` again (here the placement the API's token routes run) and opens the live node."""
    nodes = await asyncio.gather(start_node(), start_node())
    by_url = {f"http://127.0.0.1:{n.port}": n for n in nodes}
    for entry in await registered_count(redis, 2):
        by_url[entry.url].node_id = entry.id
    placement = Placement(redis)

    async def ticket() -> dict[str, Any]:
        entry = await placement.for_session()
        return {"token": token("ivy"), "node": entry.url if entry is not None else None}

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=[*FLAGS, "--enable-automation"],
                                           timeout=STEP_S * 6 * 1000)
        try:
            page = await (await browser.new_context(bypass_csp=True)).new_page()
            await page.expose_function("ticket", ticket)
            await page.goto(f"http://127.0.0.1:{nodes[0].port}/static/lib/signal.js")
            on = await asyncio.wait_for(page.evaluate("""async () => {
                const { Signal } = await import("/static/lib/signal.js");
                window.states = [];
                window.signal = new Signal({ getToken: () => window.ticket(), resumeKey: "loss-test" });
                window.signal.addEventListener("state", (e) => window.states.push(e.detail));
                return (await window.signal.connect()).node;
            }"""), STEP_S * 2)
            victim = next(n for n in nodes if n.node_id == on)
            survivor = next(n for n in nodes if n is not victim)
            _kill(victim)
            await victim.proc.wait()
            await page.wait_for_function(f"window.signal.hello.node === {survivor.node_id!r}",
                                         timeout=BACK_S * 1000)
            states = await page.evaluate("window.states")
            assert any(s["state"] == "reconnecting" for s in states)
            assert states[-1] == {"state": "connected", "resumed": False, "moved": True, "node": survivor.node_id}
            assert await page.evaluate("window.signal.node") == f"http://127.0.0.1:{survivor.port}"
        finally:
            await browser.close()


@pytest.mark.parametrize("count", [2, 3])
async def test_an_edges_viewer_decodes_again_without_moving_when_its_origin_is_killed(
        make_api: Callable[..., Any], start_node: Callable[..., Any], redis: Any, tmp_path: Path, count: int) -> None:
    """The cascade on, the origin full after one viewer: the second viewer is placed on an edge. The
    origin is killed; the broadcaster comes back through the API on a live node and publishes again.
    The edge either is that node (two nodes: its copy of the show becomes the show) or pulls the show
    again from it (three nodes, the broadcaster placed on the least loaded: the edge follows the show's
    origin record): its viewer decodes again without leaving its node."""
    api = await make_api()
    nodes = await _nodes_on_api_key(api, start_node, redis, tmp_path, count,
                                    SWITCHBOARD_CASCADE_SECRET="a-shared-secret-of-the-test-nodes",
                                    # The broadcaster's session and one viewer's fill the origin (placement
                                    # counts the sessions it sent a node before its heartbeat does).
                                    SWITCHBOARD_CASCADE_VIEWERS_PER_NODE="2")
    base = str(api.client.make_url("")).rstrip("/")
    owner = await _login(base, api)
    room = (await owner.create_room("moving origin")).room
    guests = [await _login(base, api) for _ in range(2)]
    clients: list[Any] = []
    counters: list[FrameCounter] = []
    try:
        host, show = await _broadcast(base, owner, room, clients)
        viewings = []
        for guest in guests:
            viewings.append(await _view(base, guest, room, clients))
            async with asyncio.timeout(BACK_S):
                counters.append(await _decoding(viewings[-1]))
                while not any(e.full for e in await NodeRegistry(redis).nodes()):  # noqa: ASYNC110 (polls Redis)
                    await asyncio.sleep(0.2)  # the origin's load reaches the registry: it is full
        origin = next(n for n in nodes.values() if n.node_id == host.hello.node)
        edge_viewing = viewings[1]
        assert edge_viewing.node.hello.node != origin.node_id  # placed on an edge: the cascade pulls the show

        _kill(origin)
        await origin.proc.wait()
        async with asyncio.timeout(BACK_S):
            await show.rejoined.wait()  # the broadcaster publishes again, on a live node
        assert host.hello.node != origin.node_id
        if count == 2:
            assert host.hello.node == edge_viewing.node.hello.node  # the edge's copy becomes the show

        async def frames() -> int:  # over every video track the edge's viewer got (a renegotiation adds one)
            for track in [t for t in edge_viewing.tracks if t.kind == "video"][len(counters) - 1:]:
                counters.append(FrameCounter(track))
            return sum(c.count.frames for c in counters[1:])

        seen = await frames()
        async with asyncio.timeout(BACK_S):
            while await frames() < seen + 10:  # noqa: ASYNC110 (polls the frame counters)
                await asyncio.sleep(0.2)
        assert edge_viewing.node.moves == 0 and edge_viewing.rejoins == 0 and edge_viewing.ended is None
    finally:
        for counter in counters:
            await counter.close()
        for client in reversed(clients):
            await client.close()
        for api_client in [owner, *guests]:
            await api_client.close()
