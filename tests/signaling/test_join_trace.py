"""The join path as one trace: API token request (with its SQL and Redis spans) -> node ``show.join``
-> the member's ``show.subscribe`` / ``show.answer``, collected by the SDK's InMemorySpanExporter (our
boundary: the exporter). With tracing off nothing is made and the token reply has no traceparent."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiortc import RTCSessionDescription
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from sfu.events import RedisEventSink
from sfu.worker import Worker
from signaling.node import NodeDeps, install_node
from switchboard.health import Readiness
from switchboard.ids import RoomId
from switchboard.tokens import TokenVerifier
from switchboard.tracing import Tracing
from tests.control_api.conftest import Api, conformance, make_api  # noqa: F401  (the API fixtures, on the same Postgres)
from tests.sfu.peers import MovingVideo, Viewer, client_pc
from tests.signaling.conftest import SETTINGS, Node, NodeFactory
from tests.signaling.fakes import FakeMedia, FakeTickets, media_opener
from tests.signaling.test_show_media import ROOM, subscribe_over_ws

NodeOf = Callable[..., Awaitable[Node]]


@pytest.fixture
async def node_of(redis_url: str, redis: Any, tmp_path: Any) -> AsyncIterator[NodeOf]:
    """A node trusting ``api``'s signing key, with the given tracing."""
    clients: list[TestClient] = []

    async def make(api: Api, tracing: Tracing) -> Node:
        media, app = FakeMedia(), web.Application()
        install_node(app, NodeDeps(SETTINGS, redis_url, Readiness(), tmp_path,
                                   verifier=TokenVerifier(api.key.public_key(), issuer="switchboard"),
                                   open_media=media_opener(media), open_tickets=lambda r: FakeTickets(redis),
                                   tracing=tracing))
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return Node(client, media, FakeTickets(redis), app)

    yield make
    for client in clients:
        with contextlib.suppress(Exception):
            await client.close()


async def _show_and_viewer_token(api: Api) -> tuple[str, str, dict[str, Any]]:
    owner, viewer = await api.user(), await api.user()
    status, room = await api.call("POST", "/rooms", owner, json={})
    assert status == 201, room
    status, host = await api.call("POST", f"/rooms/{room['room']}/token", owner, json={"role": "broadcaster"})
    assert status == 200, host
    status, reply = await api.call("POST", f"/rooms/{room['room']}/token", viewer, json={"role": "viewer"})
    assert status == 200, reply
    return room["room"], host["token"], reply


async def test_token_then_join_is_one_trace(make_api: Callable[..., Awaitable[Api]], node_of: NodeOf) -> None:  # noqa: F811
    api_spans, node_spans = InMemorySpanExporter(), InMemorySpanExporter()
    api = await make_api(tracing=Tracing.to_exporter(api_spans, "switchboard-api"))
    node = await node_of(api, Tracing.to_exporter(node_spans, "switchboard-node"))
    room, host_token, reply = await _show_and_viewer_token(api)
    assert reply["traceparent"].startswith("00-")

    host = await node.connect(host_token)
    await host.ok("show.create")
    viewer = await node.connect(reply["token"])
    await viewer.ok("show.join", room=room, traceparent=reply["traceparent"])
    await viewer.ok("show.subscribe", room=room)
    await viewer.ok("show.answer", room=room, sdp="v=0 ans")

    token_spans = [s for s in api_spans.get_finished_spans() if s.name == "POST /api/rooms/{room}/token"]
    assert len(token_spans) == 2  # the owner's broadcaster token and the viewer's
    token_span = next(s for s in token_spans
                      if reply["traceparent"].startswith(f"00-{s.context.trace_id:032x}-{s.context.span_id:016x}-"))
    children = [s for s in api_spans.get_finished_spans()
                if s.parent is not None and s.parent.span_id == token_span.context.span_id]
    names = {s.name for s in children}
    # The standing read (epoch, ban and premium marks); the account read is a miss of the API's read cache.
    assert "redis standing" in names and "SELECT postgresql" in names, names
    assert token_span.attributes is not None and token_span.attributes["http.response.status_code"] == 200

    by_name = {s.name: s for s in node_spans.get_finished_spans()}
    join = by_name["show.join"]
    assert join.context.trace_id == token_span.context.trace_id
    assert join.parent is not None and join.parent.span_id == token_span.context.span_id
    for step in ("show.subscribe", "show.answer"):
        assert by_name[step].context.trace_id == token_span.context.trace_id
        assert by_name[step].parent is not None and by_name[step].parent.span_id == join.context.span_id
    # The host's create has no join: its spans, if any, are not in the viewer's trace.
    assert all(s.context.trace_id == token_span.context.trace_id for s in node_spans.get_finished_spans())


async def test_tracing_off_makes_nothing(make_api: Callable[..., Awaitable[Api]], node_of: NodeOf) -> None:  # noqa: F811
    off = Tracing()
    assert off.span("x") is off.span("y")  # the one shared null context: no span object per call
    with off.span("x") as span:
        assert span is None and off.traceparent() is None
    assert off.middleware() is None
    api = await make_api()
    node = await node_of(api, Tracing())
    room, host_token, reply = await _show_and_viewer_token(api)
    assert "traceparent" not in reply
    host = await node.connect(host_token)
    await host.ok("show.create")
    viewer = await node.connect(reply["token"])
    # A client that passes a traceparent to a node without tracing is served as before.
    joined = await viewer.ok("show.join", room=room, traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01")
    assert joined["roster"]


async def test_malformed_traceparent_starts_a_new_trace(make_api: Callable[..., Awaitable[Api]],  # noqa: F811
                                                        node_of: NodeOf) -> None:
    spans = InMemorySpanExporter()
    api = await make_api()
    node = await node_of(api, Tracing.to_exporter(spans))
    room, host_token, reply = await _show_and_viewer_token(api)
    host = await node.connect(host_token)
    await host.ok("show.create")
    viewer = await node.connect(reply["token"])
    await viewer.ok("show.join", room=room, traceparent="00-not-a-traceparent-01")
    (join,) = [s for s in spans.get_finished_spans() if s.name == "show.join"]
    assert join.parent is None


async def test_first_media_ends_the_join(make_node: NodeFactory, token: Callable[..., str]) -> None:
    """Real SFU worker and aiortc peers: the first packet forwarded to a viewer records
    ``show.first_media`` (child of its ``show.join``) and one join-to-first-frame observation; a
    hidden moderator's tap records neither. The SFU's forwarded-packet counter reaches the registry."""
    spans, registry, workers = InMemorySpanExporter(), CollectorRegistry(), []

    @contextlib.asynccontextmanager
    async def open_media(redis: Any) -> AsyncIterator[Worker]:
        worker = Worker(addresses=("127.0.0.1",), events=RedisEventSink(redis))
        workers.append(worker)
        await worker.start()
        try:
            yield worker
        finally:
            await worker.close()

    node = await make_node(open_media=open_media, tracing=Tracing.to_exporter(spans), registry=registry)
    host = await node.connect(token("caster", ROOM, publish=True, verified=True))
    await host.ok("show.create")
    pc = client_pc()
    pc.addTrack(MovingVideo(320, 240))
    await pc.setLocalDescription(await pc.createOffer())
    answer = (await host.ok("show.publish", room=ROOM, sdp=pc.localDescription.sdp))["sdp"]
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    viewers: list[Viewer] = []
    api_span = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"  # as the API's token reply would carry it
    try:
        async with asyncio.timeout(20):
            while not (RoomId(ROOM) in workers[0].routers and workers[0].routers[RoomId(ROOM)].producers):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        fan = await node.connect(token("fan", ROOM, subscribe=True))
        await fan.ok("show.join", room=ROOM, traceparent=api_span)
        viewers.append(await subscribe_over_ws(fan))
        mod = await node.connect(token("mod", ROOM, subscribe=True, hidden=True, moderate=True))
        await mod.ok("show.join", room=ROOM)
        viewers.append(await subscribe_over_ws(mod))
        await viewers[0].wait_frames(3, timeout=30)
        await viewers[1].wait_frames(3, timeout=30)
        async with asyncio.timeout(10):
            while not [s for s in spans.get_finished_spans() if s.name == "show.first_media"]:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        async with asyncio.timeout(20):  # the node polls the SFU's counters every 5 s
            while not registry.get_sample_value("sfu_forwarded_packets_total"):  # noqa: ASYNC110
                await asyncio.sleep(0.1)
    finally:
        for viewer in viewers:
            await viewer.close()
        await pc.close()
    joins = [s for s in spans.get_finished_spans() if s.name == "show.join"]
    fan_join = next(s for s in joins if s.context.trace_id == int("1" * 32, 16))
    (first,) = [s for s in spans.get_finished_spans() if s.name == "show.first_media"]  # none for the tap
    assert first.parent is not None and first.parent.span_id == fan_join.context.span_id
    assert first.context.trace_id == fan_join.context.trace_id
    assert first.start_time is not None and first.end_time is not None and first.start_time <= first.end_time
    assert registry.get_sample_value("show_join_to_first_media_seconds_count") == 1
