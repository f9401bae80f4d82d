"""Real ``switchboard node`` processes in the node registry, on one Redis and on a Redis Cluster:
``switchboard nodes`` lists them, and a node killed with -9 is forgotten (its entry's TTL)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from switchboard import keyspace
from switchboard.registry import NodeRegistry
from tests.conftest import REDIS_KINDS, redis_url_of
from tests.signaling.node_processes import NodeProcess, node_starter  # noqa: F401 (the start_node fixture)

GONE_S = 15.0
"""Upper bound for the registry to forget a killed node (its TTL is 3 s; this machine is shared)."""


@pytest.fixture(params=REDIS_KINDS)
def redis_url(request: pytest.FixtureRequest) -> str:
    return redis_url_of(request)


async def switchboard(node: NodeProcess, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "switchboard", *args, env=node.env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def registered(redis: Any, want: set[str]) -> list[Any]:
    """The registry once it holds exactly ``want`` (polled: heartbeats run on their own clock)."""
    registry = NodeRegistry(redis)
    async with asyncio.timeout(GONE_S):
        while True:
            entries = await registry.nodes()
            if {e.id for e in entries} == want:
                return entries
            await asyncio.sleep(0.1)


async def test_nodes_register_and_a_killed_one_is_forgotten(start_node: Callable[..., Any],
                                                            token: Callable[..., str], redis: Any) -> None:
    one, two = await asyncio.gather(start_node(), start_node(SWITCHBOARD_NODE_REGION="eu"))
    async with aiohttp.ClientSession() as http:
        peer = await one.connect(http, token("alice"))
        await two.connect(http, token("bob"))
        entries = {e.id: e for e in await registered(redis, {one.node_id, two.node_id})}
        assert entries[one.node_id].url == f"http://127.0.0.1:{one.port}"
        assert entries[two.node_id].region == "eu" and entries[two.node_id].workers == 1
        code, out, _ = await switchboard(one, "nodes", "--json")
        listed = {n["id"]: n for n in json.loads(out)}
        assert code == 0 and set(listed) == {one.node_id, two.node_id}
        assert listed[two.node_id]["url"] == f"http://127.0.0.1:{two.port}"
        code, out, _ = await switchboard(one, "nodes")
        assert code == 0 and out.splitlines()[0].split()[:3] == ["id", "url", "region"] and one.node_id in out
        assert 0 < await redis.pttl(keyspace.node_entry(two.node_id)) <= 3000  # the TTL that forgets it
        os.kill(two.proc.pid, signal.SIGKILL)
        await two.proc.wait()
        await registered(redis, {one.node_id})
        await peer.ws.close()
