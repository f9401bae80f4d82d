"""Two node applications on one Redis: users on different nodes call each other through pub/sub."""

from __future__ import annotations

from collections.abc import Callable

from tests.signaling.conftest import NodeFactory


async def test_call_across_two_nodes(make_node: NodeFactory, token: Callable[..., str]) -> None:
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
