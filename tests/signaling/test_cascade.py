"""One show over three ``switchboard node`` processes on one Redis (and on a 3-master Redis Cluster):
the publisher on A, real aiortc viewers on B and C decode its frames through sealed pipes between the
nodes; the roster, count and chat span the three nodes; a moderator's tap on B is seen on no node; a
forged RTP datagram sent to a pipe's port is dropped and counted; the show's end reaches every node.
A call, and a random match (a real ``switchboard matchmaker`` process), between parties on two nodes go
through the SFU (each node pulls the other's party), and a moderator on a third node taps them unseen.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from sfu.rtp import HEADER
from tests.conftest import REDIS_KINDS, redis_url_of
from tests.sfu.peers import MovingVideo, Viewer, answer_offer, client_pc
from tests.signaling.conftest import Peer, befriend
from tests.signaling.node_processes import NodeProcess, node_starter  # noqa: F401 (the start_node fixture)
from tests.signaling.test_call_media import CountingViewer, publish, receiver

ROOM = "cascade-live"
SECRET = "a-shared-secret-of-the-test-nodes"
STEP_S = 30.0


@pytest.fixture(params=REDIS_KINDS)
def redis_url(request: pytest.FixtureRequest) -> str:
    return redis_url_of(request)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def watch_viewer(peer: Peer, *, retry: bool = False) -> Viewer:
    """A real viewer over the socket; ``retry``: subscribe again until the show has its video (the
    publisher's first packets may not have reached the SFU yet)."""
    viewer = Viewer(client_pc())

    @viewer.pc.on("track")
    def on_track(track) -> None:  # type: ignore[no-untyped-def]
        viewer.tasks.append(asyncio.ensure_future(viewer._pull(track)))

    async with asyncio.timeout(STEP_S):
        while True:
            offer = (await peer.ok("show.subscribe", room=ROOM))["sdp"]
            if "m=video" in offer or not retry:
                break
            await asyncio.sleep(0.3)
    await peer.ok("show.answer", room=ROOM, sdp=await answer_offer(viewer, offer))
    return viewer


async def roster_of(peer: Peer, want: set[str]) -> dict[str, Any]:
    """The first roster (pushed or asked) naming exactly ``want``."""
    async with asyncio.timeout(STEP_S):
        while True:
            roster = await peer.ok("show.roster", room=ROOM)
            if set(roster["roster"]) == want:
                return roster
            await asyncio.sleep(0.1)


async def metric(port: int, name: str) -> float:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as r:
        for line in (await r.text()).splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


@pytest.fixture
async def pipe_ports(redis: Any) -> AsyncIterator[list[int]]:
    """The ports edges announce in their ``pipe.open`` requests, as Redis carries them."""
    ports: list[int] = []
    pubsub = redis.pubsub()
    await pubsub.psubscribe("node:*")

    async def read() -> None:
        while True:
            item = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if item is not None and item.get("type") == "pmessage":
                message = json.loads(item["data"])
                if message.get("kind") == "pipe.open":
                    ports.append(int(message["port"]))

    task = asyncio.create_task(read())
    yield ports
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await pubsub.aclose()


async def test_one_show_over_three_node_processes(start_node: Callable[..., Any], token: Callable[..., str],
                                                  pipe_ports: list[int]) -> None:
    metrics_b = free_port()
    a, b, c = await asyncio.gather(
        start_node(SWITCHBOARD_CASCADE_SECRET=SECRET),
        start_node(SWITCHBOARD_CASCADE_SECRET=SECRET, SWITCHBOARD_METRICS_NODE_PORT=str(metrics_b)),
        start_node(SWITCHBOARD_CASCADE_SECRET=SECRET))
    assert all(isinstance(n, NodeProcess) for n in (a, b, c))
    pcs: list[RTCPeerConnection] = []
    viewers: list[Viewer] = []
    async with aiohttp.ClientSession() as http:
        caster = await a.connect(http, token("caster", ROOM, publish=True, verified=True))
        await caster.ok("show.create")
        pc = client_pc()
        pcs.append(pc)
        pc.addTrack(MovingVideo(320, 240))
        await pc.setLocalDescription(await pc.createOffer())
        answer = (await caster.ok("show.publish", room=ROOM, sdp=pc.localDescription.sdp))["sdp"]
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        try:
            ann = await a.connect(http, token("ann", ROOM, subscribe=True))
            await ann.ok("show.join", room=ROOM)
            viewers.append(await watch_viewer(ann, retry=True))  # on the origin
            bob = await b.connect(http, token("bob", ROOM, subscribe=True))
            joined = await bob.ok("show.join", room=ROOM)  # B pulls the show from A: an edge
            assert joined["owner"] == "caster" and set(joined["roster"]) == {"caster", "ann", "bob"}
            viewers.append(await watch_viewer(bob))
            cat = await c.connect(http, token("cat", ROOM, subscribe=True))
            await cat.ok("show.join", room=ROOM)
            viewers.append(await watch_viewer(cat))
            for viewer in viewers:
                await viewer.wait_frames(5, timeout=STEP_S)
                assert viewer.sizes == {(320, 240)}
            everyone = {"caster", "ann", "bob", "cat"}
            for peer in (caster, ann, bob, cat):
                assert (await roster_of(peer, everyone))["viewers"] == 3

            # A moderator's tap on B: it decodes, and no node's roster or count shows it.
            mod = await b.connect(http, token("mod", ROOM, subscribe=True, hidden=True, moderate=True))
            tapped = await mod.ok("show.join", room=ROOM)
            assert tapped["hidden"] is True and "mod" not in tapped["roster"]
            tap = await watch_viewer(mod)
            viewers.append(tap)
            await tap.wait_frames(5, timeout=STEP_S)
            for peer in (caster, ann, bob, cat):
                roster = await peer.ok("show.roster", room=ROOM)
                assert set(roster["roster"]) == everyone and roster["viewers"] == 3
                assert not [m for m in peer.seen if "mod" in json.dumps(m)]

            # Chat spans the nodes, both ways.
            await cat.ok("show.chat", room=ROOM, text="hello from C")
            for peer in (caster, ann, bob):
                assert (await peer.expect("show.chat", room=ROOM, text="hello from C"))["from"] == "cat"
            await caster.ok("show.chat", room=ROOM, text="hello from A")
            for peer in (bob, cat):
                await peer.expect("show.chat", room=ROOM, text="hello from A")

            # A stranger's RTP to an edge's pipe port: dropped and counted; the viewers go on.
            assert pipe_ports, "no pipe.open went through Redis"
            forger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for port in pipe_ports:
                forger.sendto(HEADER.pack(0x80, 96, 7, 1234, 0x1234) + b"not from the origin", ("127.0.0.1", port))
            forger.close()
            async with asyncio.timeout(STEP_S):
                while await metric(metrics_b, "sfu_pipe_forged_packets_total") < 1:  # noqa: ASYNC110 (polls /metrics)
                    await asyncio.sleep(0.5)
            for viewer in viewers:
                await viewer.wait_frames(viewer.frames["video"] + 5, timeout=STEP_S)

            # A viewer leaving an edge leaves every roster; the end reaches every node.
            await cat.ok("show.leave", room=ROOM)
            for peer in (caster, ann, bob):
                await roster_of(peer, {"caster", "ann", "bob"})
            await caster.ok("show.end", room=ROOM)
            for peer in (ann, bob, mod):
                await peer.expect("show.ended", room=ROOM)
        finally:
            for viewer in viewers:
                await viewer.close()
            for each in pcs:
                await each.close()


async def call_viewer(peer: Peer, call_id: str, videos: int, kind: str = "call.subscribe",
                      leg: str = "subscribe") -> CountingViewer:
    """A party's (or a tap's) receiving leg, asked again until the SFU offers ``videos`` cameras (the far
    party's tracks arrive through a pipe once it published)."""
    async with asyncio.timeout(STEP_S):
        while True:
            offer = (await peer.ok(kind, call_id=call_id))["sdp"]
            if offer.count("m=video") >= videos:
                break
            await asyncio.sleep(0.3)
    viewer = receiver()
    await peer.ok("call.sfu_answer", call_id=call_id, leg=leg, sdp=await answer_offer(viewer, offer))
    return viewer


async def through_the_sfu_and_tapped_from_a_third(http: aiohttp.ClientSession, amy: Peer, bob: Peer,
                                                 third: NodeProcess, token: Callable[..., str], call_id: str,
                                                 end: Callable[[], Any]) -> None:
    """Parties on two nodes each decode the other's camera; a moderator on ``third`` taps both unseen;
    ``end`` ends the call or match, which closes the tap."""
    pcs: list[RTCPeerConnection] = []
    viewers: list[Viewer] = []
    try:
        pcs += [await publish(amy, call_id), await publish(bob, call_id)]
        viewers += [await call_viewer(amy, call_id, 1), await call_viewer(bob, call_id, 1)]
        for viewer in viewers:  # each gets the other's camera, pulled from the other node
            assert viewer.pc.remoteDescription.sdp.count("m=video") == 1
            await viewer.wait_frames(5, timeout=STEP_S)
        await amy.ok("ping")
        await bob.ok("ping")
        before = [len(amy.seen), len(bob.seen)]

        mod = await third.connect(http, token("mia", moderate=True, hidden=True))
        tap = await call_viewer(mod, call_id, 2, "call.tap", "tap")  # the third node pulls both parties
        viewers.append(tap)
        async with asyncio.timeout(STEP_S):  # both parties' cameras decode on the tap
            while not (len(tap.per_track) == 2 and min(tap.per_track.values()) >= 5):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        for viewer in viewers[:2]:
            await viewer.wait_frames(viewer.frames["video"] + 5, timeout=STEP_S)
        await amy.ok("ping")
        await bob.ok("ping")
        assert [len(amy.seen), len(bob.seen)] == before, (amy.seen, bob.seen)  # nothing tells them

        await end()
        await mod.expect("call.sfu_closed", call_id=call_id, leg="tap")
    finally:
        for viewer in viewers:
            await viewer.close()
        for each in pcs:
            await each.close()


async def test_a_call_across_nodes_goes_through_the_sfu_and_is_tapped_from_a_third(
        start_node: Callable[..., Any], token: Callable[..., str], redis: Any) -> None:
    await befriend(redis, "amy", "bob")
    settings = {"SWITCHBOARD_CASCADE_SECRET": SECRET, "SWITCHBOARD_NODE_CALL_MEDIA": "sfu"}
    a, b, c = await asyncio.gather(start_node(**settings), start_node(**settings), start_node(**settings))
    async with aiohttp.ClientSession() as http:
        amy, bob = await a.connect(http, token("amy")), await b.connect(http, token("bob"))
        call_id = (await amy.ok("call.invite", to="bob"))["call_id"]
        await bob.expect("call.incoming", call_id=call_id)
        assert (await bob.ok("call.accept", call_id=call_id))["media"] == "sfu"  # parties on two nodes
        assert (await amy.expect("call.accepted", call_id=call_id))["media"] == "sfu"

        async def hang_up() -> None:
            await amy.ok("call.hangup", call_id=call_id)
            await bob.expect("call.ended", call_id=call_id)

        await through_the_sfu_and_tapped_from_a_third(http, amy, bob, c, token, call_id, hang_up)


@pytest.fixture
async def matchmaker(redis_url: str, redis: Any, tmp_path: Any) -> AsyncIterator[None]:
    """A ``switchboard matchmaker`` process on the test's Redis."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env.update({"SWITCHBOARD_REDIS_URL": redis_url, "SWITCHBOARD_MATCHMAKER_PORT": "0",
                "SWITCHBOARD_DATA_DIR": str(tmp_path / "mm"), "SWITCHBOARD_LOG_LEVEL": "WARNING"})
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "switchboard", "matchmaker", env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    async with asyncio.timeout(60):
        while b"listening" not in (line := await proc.stdout.readline()):
            assert line, "the matchmaker exited"
    yield
    proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), 15)
    except TimeoutError:
        proc.kill()
        await proc.wait()


async def test_a_random_match_across_nodes_goes_through_the_sfu_and_is_tapped_from_a_third(
        start_node: Callable[..., Any], token: Callable[..., str], matchmaker: None) -> None:
    settings = {"SWITCHBOARD_CASCADE_SECRET": SECRET}  # node.match_media is "sfu" by default
    a, b, c = await asyncio.gather(start_node(**settings), start_node(**settings), start_node(**settings))
    async with aiohttp.ClientSession() as http:
        kim, lou = await a.connect(http, token("kim")), await b.connect(http, token("lou"))
        ticket = {"country": "FR", "age": 30}
        await kim.ok("queue.join", ticket=ticket)
        await lou.ok("queue.join", ticket=ticket)
        found = [await kim.expect("match.found"), await lou.expect("match.found")]
        assert [f["media"] for f in found] == ["sfu", "sfu"]  # parties on two nodes, through the SFU
        sid = found[0]["session_id"]

        async def leave() -> None:
            await lou.ok("queue.leave")
            await kim.expect("match.ended", session_id=sid)

        await through_the_sfu_and_tapped_from_a_third(http, kim, lou, c, token, sid, leave)
