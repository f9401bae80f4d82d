"""A ``premium`` notice on the sanctions channel (written by the control API's payments) changes the
premium grant of the user's live sessions on this node: their next queue.join keeps or drops the
premium filters without a new token. Other users' sessions are untouched."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

from switchboard.keyspace import SANCTIONS_CHANNEL
from tests.signaling.conftest import Node, Peer

TICKET = {"country": "FR", "age": 30, "filters": {"age_min": 25}}


async def _ignored(peer: Peer) -> list[str]:
    reply = await peer.ok("queue.join", ticket=TICKET)
    await peer.ok("queue.leave")
    return list(reply["ignored_filters"])


async def _until(peer: Peer, want: list[str]) -> None:
    """Asks again until the node has taken the notice (the issue's bound: within 5 s)."""
    for _ in range(100):
        if await _ignored(peer) == want:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"queue.join never ignored exactly {want}")


async def test_a_premium_notice_changes_live_sessions(node: Node, token: Callable[..., str], redis: Any) -> None:
    buyer, other = str(uuid.uuid4()), str(uuid.uuid4())
    a, b = await node.connect(token(buyer)), await node.connect(token(other))
    assert await _ignored(a) == ["age_min"]
    await redis.publish(SANCTIONS_CHANNEL, json.dumps({"user": buyer, "kind": "premium", "premium": True}))
    await _until(a, [])
    assert await _ignored(b) == ["age_min"]
    await redis.publish(SANCTIONS_CHANNEL, json.dumps({"user": buyer, "kind": "premium", "premium": False}))
    await _until(a, ["age_min"])
