"""``switchboard node`` child processes on the test's Redis (one Redis or the cluster), for multi-node tests."""

from __future__ import annotations

import asyncio
import collections
import os
import re
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from switchboard.wire import Codec
from tests.signaling.conftest import Peer

START_S = 60.0
"""Upper bound for a node process to import, open Redis and its SFU worker, and listen."""
OUTPUT_LINES = 400
"""How many of a node's last lines of output the fixture keeps."""
RESUME_WINDOW_S = 1
"""The nodes' resume window: a socket that goes away ends its session (and its calls) this soon."""


class NodeProcess:
    """One ``python -m switchboard node`` child: its port, and sockets opened to it."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int, env: dict[str, str], seen: list[str]) -> None:
        self.proc = proc
        self.port = port
        self.env = env
        """The environment it runs with (``switchboard`` commands against the same Redis use it)."""
        self.node_id = ""
        """Its id, once a socket's ``hello`` told it (:meth:`connect`)."""
        self.output: collections.deque[str] = collections.deque(seen, maxlen=OUTPUT_LINES)
        """Its last lines of output (printed at the fixture's teardown: a failing test shows them)."""
        self._drain = asyncio.create_task(self._read())  # a full pipe would block the node's logging
        self._sockets: list[aiohttp.ClientWebSocketResponse] = []

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.output.append(line.decode(errors="replace"))

    async def connect(self, http: aiohttp.ClientSession, token: str) -> Peer:
        ws = await http.ws_connect(f"http://127.0.0.1:{self.port}/ws", params={"token": token})
        self._sockets.append(ws)
        peer = Peer(ws, Codec.JSON)
        peer.hello = await peer.expect("hello")  # type: ignore[attr-defined]
        self.node_id = peer.hello["node"]  # type: ignore[attr-defined]
        return peer

    async def logs(self) -> str:
        """Its last lines of output, once it exited (waits for that)."""
        await self._drain
        return "".join(self.output)

    async def stop(self) -> None:
        """Closes the sockets :meth:`connect` opened (a socket left open when its session closed keeps its
        connection: aiohttp warns when that is collected, in whichever later test the collector runs),
        then stops the node."""
        for ws in self._sockets:
            await ws.close()
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        await self._drain


@pytest.fixture(name="start_node")
async def node_starter(redis_url: str, redis: object, token_key: Ed25519PrivateKey,
                     tmp_path: Path) -> AsyncIterator[Callable[[], object]]:
    public = tmp_path / "token.pub.pem"
    public.write_bytes(token_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                           serialization.PublicFormat.SubjectPublicKeyInfo))
    started: list[NodeProcess] = []

    async def start(**settings: str) -> NodeProcess:
        """A node; ``settings`` are more SWITCHBOARD_* variables (e.g. ``SWITCHBOARD_NODE_DRAIN_GRACE_S``)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
        env.update({"SWITCHBOARD_REDIS_URL": redis_url, "SWITCHBOARD_TOKENS_PUBLIC_KEY_FILE": str(public),
                    "SWITCHBOARD_DATA_DIR": str(tmp_path / f"node{len(started)}"), "SWITCHBOARD_NODE_PORT": "0",
                    "SWITCHBOARD_METRICS_NODE_PORT": "0",
                    "SWITCHBOARD_NODE_RESUME_WINDOW_S": str(RESUME_WINDOW_S), "SWITCHBOARD_LOG_LEVEL": "WARNING",
                    # A stop (SIGTERM) drains for this long when other nodes live: none unless a test asks.
                    "SWITCHBOARD_NODE_DRAIN_GRACE_S": "0"})
        env.update(settings)
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
        node = NodeProcess(proc, int(found.group(1)), env, seen)
        started.append(node)
        return node

    yield start
    for i, node in enumerate(started):
        await node.stop()
        print(f"--- node {i} (port {node.port}, id {node.node_id or '?'}) exited {node.proc.returncode}:\n"
              + "".join(node.output))
