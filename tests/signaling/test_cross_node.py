"""Two ``switchboard node`` processes on one Redis: users on different nodes call each other, see
each other's presence and learn when the other leaves, through Redis pub/sub only.

The in-process test at the end runs the same flow on two node applications in this process (quicker
to debug); the process test is the one the issue asks for. Both run on one Redis and on a real
3-master Redis Cluster (tests/redis_cluster.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from tests.conftest import REDIS_KINDS, redis_url_of
from tests.signaling.conftest import NodeFactory, befriend
from tests.signaling.node_processes import NodeProcess, node_starter  # noqa: F401 (the start_node fixture)


@pytest.fixture(params=REDIS_KINDS)
def redis_url(request: pytest.FixtureRequest) -> str:
    return redis_url_of(request)


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


