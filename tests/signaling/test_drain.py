"""``switchboard node drain``: a real node process sends its clients to another node (a ``reconnect``
naming it), leaves the registry and exits once they have moved; SIGTERM does the same."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp

from tests.signaling.conftest import STEP_S
from tests.signaling.node_processes import node_starter  # noqa: F401 (the start_node fixture)
from tests.signaling.test_nodes import registered, switchboard


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
