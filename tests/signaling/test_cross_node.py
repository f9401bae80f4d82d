"""Two ``switchboard node`` processes on one Redis: users on different nodes call each other, see
each other's presence and learn when the other leaves, through Redis pub/sub only.

The in-process test at the end runs the same flow on two node applications in this process (quicker
to debug); the process test is the one the issue asks for. Both run on one Redis and on a real
3-master Redis Cluster (tests/redis_cluster.py).
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from switchboard.wire import Codec
from tests.conftest import REDIS_KINDS, redis_url_of
from tests.signaling.conftest import NodeFactory, Peer, befriend

START_S = 60.0
"""Upper bound for a node process to import, open Redis and its SFU worker, and listen."""
RESUME_WINDOW_S = 1
"""The nodes' resume window: a socket that goes away ends its session (and its calls) this soon."""


@pytest.fixture(params=REDIS_KINDS)
def redis_url(request: pytest.FixtureRequest) -> str:
    return redis_url_of(request)


class NodeProcess:
    """One ``python -m switchboard node`` child: its port, and sockets opened to it."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc = proc
        self.port = port

    async def connect(self, http: aiohttp.ClientSession, token: str) -> Peer:
        ws = await http.ws_connect(f"http://127.0.0.1:{self.port}/ws", params={"token": token})
        peer = Peer(ws, Codec.JSON)
        peer.hello = await peer.expect("hello")  # type: ignore[attr-defined]
        return peer

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


@pytest.fixture
async def start_node(redis_url: str, redis: object, token_key: Ed25519PrivateKey,
                     tmp_path: Path) -> AsyncIterator[Callable[[], object]]:
    public = tmp_path / "token.pub.pem"
    public.write_bytes(token_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                           serialization.PublicFormat.SubjectPublicKeyInfo))
    started: list[NodeProcess] = []

    async def start() -> NodeProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
        env.update({"SWITCHBOARD_REDIS_URL": redis_url, "SWITCHBOARD_TOKENS_PUBLIC_KEY_FILE": str(public),
                    "SWITCHBOARD_DATA_DIR": str(tmp_path / f"node{len(started)}"), "SWITCHBOARD_NODE_PORT": "0",
                    "SWITCHBOARD_METRICS_NODE_PORT": "0",
                    "SWITCHBOARD_NODE_RESUME_WINDOW_S": str(RESUME_WINDOW_S), "SWITCHBOARD_LOG_LEVEL": "WARNING"})
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "switchboard", "node", "--workers", "1", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        assert proc.stdout is not None
        seen = []
        async with asyncio.timeout(START_S):
            while True:
                line = (await proc.stdout.readline()).decode()
                if not line:
                    raise RuntimeError(f"node exited before listening: {''.join(seen)}")
                seen.append(line)
                found = re.search(r"switchboard node listening on port (\d+)", line)
                if found:
                    break
        node = NodeProcess(proc, int(found.group(1)))
        started.append(node)
        return node

    yield start
    for node in started:
        await node.stop()


async def test_call_across_two_node_processes(start_node: Callable[[], object], token: Callable[..., str],
                                              redis: Any) -> None:
    await befriend(redis, "north", "south", "nobody")  # presence is for friends only
    one, two = await asyncio.gather(start_node(), start_node())  # type: ignore[arg-type]
    assert isinstance(one, NodeProcess) and isinstance(two, NodeProcess) and one.port != two.port
    async with aiohttp.ClientSession() as http:
        pa, pb = await one.connect(http, token("north")), await two.connect(http, token("south"))
        assert pa.hello["node"] != pb.hello["node"]  # type: ignore[attr-defined]
        assert (await pa.ok("presence.query", users=["south", "nobody"]))["presence"] == {
            "south": "online", "nobody": "offline"}
        assert (await pb.ok("presence.query", users=["north"]))["presence"] == {"north": "online"}
        cid = (await pa.ok("call.invite", to="south"))["call_id"]
        assert (await pb.expect("call.incoming", call_id=cid))["from"] == "north"
        await pa.expect("call.ringing", call_id=cid)
        assert (await pb.ok("call.accept", call_id=cid))["peer"] == "north"
        await pa.expect("call.accepted", call_id=cid)
        await pb.expect("call.accepted", call_id=cid)
        await pa.ok("call.offer", call_id=cid, sdp="v=0 offer from north")
        offer = await pb.expect("call.offer", call_id=cid)
        assert (offer["sdp"], offer["from"]) == ("v=0 offer from north", "north")
        await pb.ok("call.answer", call_id=cid, sdp="v=0 answer from south")
        assert (await pa.expect("call.answer", call_id=cid))["sdp"] == "v=0 answer from south"
        await pa.ok("call.ice", call_id=cid, candidate={"candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host",
                                                       "sdpMid": "0", "sdpMLineIndex": 0})
        assert (await pb.expect("call.ice", call_id=cid))["candidate"]["sdpMid"] == "0"
        await pb.ok("call.chat", call_id=cid, text="hello from the other node")
        assert (await pa.expect("call.chat", call_id=cid))["text"] == "hello from the other node"
        # south's socket goes away: after the resume window its node ends the call and its presence.
        await pb.ws.close()
        ended = await pa.expect("call.ended", call_id=cid)
        assert (ended["reason"], ended["by"]) == ("left", "south")
        # The node deletes the presence key before it ends the user's call, so this holds already.
        assert (await pa.ok("presence.query", users=["south"]))["presence"] == {"south": "offline"}
        await pa.ws.close()


async def test_call_across_two_node_apps_in_process(make_node: NodeFactory, token: Callable[..., str],
                                                     redis: Any) -> None:
    await befriend(redis, "north", "south")
    one, two = await make_node(), await make_node()
    pa, pb = await one.connect(token("north")), await two.connect(token("south"))
    assert pa.hello["node"] != pb.hello["node"]  # type: ignore[attr-defined]
    cid = (await pa.ok("call.invite", to="south"))["call_id"]
    await pb.expect("call.incoming", call_id=cid)
    await pa.expect("call.ringing", call_id=cid)
    await pb.ok("call.accept", call_id=cid)
    await pa.expect("call.accepted", call_id=cid)
    await pa.ok("call.offer", call_id=cid, sdp="v=0 across")
    assert (await pb.expect("call.offer"))["sdp"] == "v=0 across"
    await pb.ok("call.answer", call_id=cid, sdp="v=0 back")
    assert (await pa.expect("call.answer"))["sdp"] == "v=0 back"
    assert (await pa.ok("presence.query", users=["south"]))["presence"] == {"south": "online"}
    await pb.ok("call.hangup", call_id=cid)
    assert (await pa.expect("call.ended", call_id=cid))["by"] == "south"


