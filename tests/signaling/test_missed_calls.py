"""A 1:1 call the callee never answered (it rang out, or the caller called it off) is written to the
events stream as ``call_missed`` (from the caller, to the callee); a declined or answered call is not."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable
from typing import Any

from switchboard.keyspace import EVENTS_STREAM
from tests.signaling.conftest import SETTINGS, NodeFactory


async def missed(redis: Any, *users: str) -> list[tuple[str, str, str]]:
    out = []
    for _, fields in await redis.xrange(EVENTS_STREAM):
        data = json.loads(fields[b"data"])
        if fields[b"type"] == b"call_missed" and data["to"] in users:
            out.append((data["from"], data["to"], data["call_id"]))
    return out


async def test_missed_calls_are_recorded(make_node: NodeFactory, token: Callable[..., str], redis: Any) -> None:
    node = await make_node(settings=dataclasses.replace(SETTINGS, call_ring_timeout_s=0.5))
    caller, callee = f"m{uuid.uuid4().hex[:8]}", f"m{uuid.uuid4().hex[:8]}"
    pa, pb = await node.connect(token(caller)), await node.connect(token(callee))
    declined = (await pa.ok("call.invite", to=callee))["call_id"]
    await pb.ok("call.decline", call_id=declined)
    cancelled = (await pa.ok("call.invite", to=callee))["call_id"]
    await pa.ok("call.cancel", call_id=cancelled)
    hung_up = (await pa.ok("call.invite", to=callee))["call_id"]
    await pa.ok("call.hangup", call_id=hung_up)  # the caller gave up while it rang
    answered = (await pa.ok("call.invite", to=callee))["call_id"]
    await pb.ok("call.accept", call_id=answered)
    await pb.ok("call.hangup", call_id=answered)
    timed_out = (await pa.ok("call.invite", to=callee))["call_id"]
    assert (await pb.expect("call.ended", call_id=timed_out))["reason"] == "timeout"
    assert await missed(redis, callee, caller) == [(caller, callee, cancelled), (caller, callee, hung_up),
                                                   (caller, callee, timed_out)]
