"""1:1 calls end to end over /ws on one node and the real Redis; matches; presence; resume."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from switchboard.keyspace import EVENTS_STREAM
from tests.signaling.conftest import SETTINGS, Node, NodeFactory, Peer, befriend


async def call(node: Node, token: Callable[..., str], a: str = "ann", b: str = "ben") -> tuple[Peer, Peer, str]:
    pa, pb = await node.connect(token(a)), await node.connect(token(b))
    call_id = (await pa.ok("call.invite", to=b))["call_id"]
    assert (await pb.expect("call.incoming", call_id=call_id))["from"] == a
    await pa.expect("call.ringing", call_id=call_id)
    assert (await pb.ok("call.accept", call_id=call_id))["peer"] == a
    await pa.expect("call.accepted", call_id=call_id)
    await pb.expect("call.accepted", call_id=call_id)
    return pa, pb, call_id


async def test_invite_accept_relay_hangup(node: Node, token: Callable[..., str], redis) -> None:  # type: ignore[no-untyped-def]
    pa, pb, call_id = await call(node, token)
    await pa.ok("call.offer", call_id=call_id, sdp="v=0 offer")
    assert (await pb.expect("call.offer"))["sdp"] == "v=0 offer"
    await pb.ok("call.answer", call_id=call_id, sdp="v=0 answer")
    assert (await pa.expect("call.answer"))["from"] == "ben"
    await pa.ok("call.ice", call_id=call_id, candidate={"candidate": "candidate:1 1 udp 1 1.2.3.4 5 typ host"})
    await pb.expect("call.ice")
    await pb.ok("call.chat", call_id=call_id, text="hi")
    assert (await pa.expect("call.chat"))["text"] == "hi"
    await pb.ok("call.like", call_id=call_id)
    await pa.expect("call.like")
    await pa.ok("call.follow_request", call_id=call_id)
    await pb.expect("call.follow_request")
    entries = await redis.xrange(EVENTS_STREAM)
    kinds = [(e[1][b"type"], json.loads(e[1][b"data"])["from"]) for e in entries]
    assert kinds == [(b"like", "ben"), (b"follow_request", "ann")]
    await pa.ok("call.hangup", call_id=call_id)
    assert (await pb.expect("call.ended", call_id=call_id))["reason"] == "hangup"
    error = await pa.request("call.offer", call_id=call_id, sdp="v=0 late")
    assert error["code"] == "not_found"


async def test_relay_only_between_parties(node: Node, token: Callable[..., str]) -> None:
    pa, pb, call_id = await call(node, token)
    eve = await node.connect(token("eve"))
    error = await eve.request("call.offer", call_id=call_id, sdp="v=0 sneaky")
    assert error["code"] == "not_found"
    assert (await eve.request("call.hangup", call_id=call_id))["code"] == "not_found"
    await pa.ok("call.chat", call_id=call_id, text="only ben")
    await pb.expect("call.chat", text="only ben")
    assert (await eve.ok("ping"))["pong"] and not [m for m in eve.seen if m["type"].startswith("call.")]


async def test_decline_cancel_busy_offline(node: Node, token: Callable[..., str]) -> None:
    pa, pb = await node.connect(token("cat")), await node.connect(token("dan"))
    cid = (await pa.ok("call.invite", to="dan"))["call_id"]
    await pb.expect("call.incoming", call_id=cid)
    await pb.ok("call.decline", call_id=cid)
    assert (await pa.expect("call.ended", call_id=cid))["reason"] == "declined"
    assert (await pa.request("call.accept", call_id=cid))["code"] == "not_found"  # caller cannot accept
    assert (await pb.request("call.accept", call_id=cid))["code"] == "conflict"
    cid = (await pa.ok("call.invite", to="dan"))["call_id"]
    await pa.ok("call.cancel", call_id=cid)
    assert (await pb.expect("call.ended", call_id=cid))["reason"] == "cancelled"
    cid = (await pa.ok("call.invite", to="dan"))["call_id"]
    pc = await node.connect(token("fay"))
    assert (await pc.request("call.invite", to="dan"))["code"] == "busy"
    assert (await pc.request("call.invite", to="cat"))["code"] == "busy"
    assert (await pa.request("call.invite", to="fay"))["code"] == "busy"
    await pa.ok("call.cancel", call_id=cid)
    assert (await pc.request("call.invite", to="nobody-online"))["code"] == "not_found"
    assert (await pc.request("call.invite", to="fay"))["code"] == "bad_message"


async def test_ring_timeout_ends_the_call(make_node: NodeFactory, token: Callable[..., str]) -> None:
    node = await make_node(settings=dataclasses.replace(SETTINGS, call_ring_timeout_s=0.3))
    pa, pb = await node.connect(token("gus")), await node.connect(token("hal"))
    cid = (await pa.ok("call.invite", to="hal"))["call_id"]
    assert (await pa.expect("call.ended", call_id=cid))["reason"] == "timeout"
    assert (await pb.expect("call.ended", call_id=cid))["reason"] == "timeout"
    assert (await pb.request("call.accept", call_id=cid))["code"] == "conflict"


async def test_match_found_forwarded_and_runs_as_call(node: Node, token: Callable[..., str]) -> None:
    pa, pb = await node.connect(token("ivy")), await node.connect(token("jon"))
    ticket = {"country": "FR", "age": 30}
    await pa.ok("queue.join", ticket=ticket)
    await pb.ok("queue.join", ticket=ticket)
    found_a, found_b = await pa.expect("match.found"), await pb.expect("match.found")
    assert found_a["session_id"] == found_b["session_id"] and found_a["offerer"] != found_b["offerer"]
    assert found_a["peer"]["user_id"] == "jon"
    sid = found_a["session_id"]
    await pa.ok("call.offer", call_id=sid, sdp="v=0 match")
    assert (await pb.expect("call.offer"))["sdp"] == "v=0 match"
    assert (await pa.request("queue.join", ticket={"age": "old"}))["code"] == "bad_ticket"
    assert (await pa.ok("queue.leave"))["left"] is False
    assert (await pa.ok("queue.next"))["outcome"] == "queued"


async def test_presence_query(node: Node, token: Callable[..., str], redis: Any) -> None:
    await befriend(redis, "kim", "lea", "zed")
    pa = await node.connect(token("kim"))
    await node.connect(token("lea"))
    reply = await pa.ok("presence.query", users=["lea", "kim", "zed"])
    assert reply["presence"] == {"lea": "online", "kim": "online", "zed": "offline"}


async def test_resume_keeps_call_and_gets_missed_messages(node: Node, token: Callable[..., str]) -> None:
    pa, pb, call_id = await call(node, token, "max", "ned")
    resume = pb.hello["resume_token"]  # type: ignore[attr-defined]
    await pb.ws.close()
    await pa.ok("call.chat", call_id=call_id, text="while you were away")
    pb2 = await node.connect(token("ned"), resume=resume)
    assert pb2.hello["resumed"] is True  # type: ignore[attr-defined]
    assert (await pb2.expect("call.chat"))["text"] == "while you were away"
    await pb2.ok("call.chat", call_id=call_id, text="back")
    await pa.expect("call.chat", text="back")


async def test_session_expiry_ends_the_call(make_node: NodeFactory, token: Callable[..., str], redis: Any) -> None:
    await befriend(redis, "oli", "pam")
    node = await make_node(settings=dataclasses.replace(SETTINGS, resume_window_s=0.2))
    pa, pb, call_id = await call(node, token, "oli", "pam")
    await pb.ws.close()
    assert (await pa.expect("call.ended", call_id=call_id))["reason"] == "left"
    assert (await pa.ok("presence.query", users=["pam"]))["presence"] == {"pam": "offline"}


