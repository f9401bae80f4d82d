"""Joins and leaves go to Redis in batches: many sockets arriving at once are each subscribed and
present before their ``hello``, and reachable from another node; leaving clears it all."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

from switchboard.keyspace import presence
from tests.signaling.conftest import SETTINGS, NodeFactory, befriend

USERS = 40


async def test_a_crowd_arriving_at_once_is_subscribed_and_present(make_node: NodeFactory, redis: Any,
                                                                    token: Callable[..., str]) -> None:
    here = await make_node(settings=dataclasses.replace(SETTINGS, resume_window_s=0.2))
    there = await make_node()
    names = [f"crowd{i}" for i in range(USERS)]
    await befriend(redis, "outsider", *names)  # presence is for friends only
    peers = await asyncio.gather(*(here.connect(token(n)) for n in names))
    # Present as soon as the hello came (the batch is written before any hello is sent).
    assert all(v is not None for v in await redis.mget([presence(n) for n in names]))
    caller = await there.connect(token("outsider"))
    online = (await caller.ok("presence.query", users=names))["presence"]
    assert set(online.values()) == {"online"}
    # Reachable through the batched channel subscriptions from the other node.
    for name, peer in zip(names[:5], peers[:5], strict=True):
        cid = (await caller.ok("call.invite", to=name))["call_id"]
        assert (await peer.expect("call.incoming", call_id=cid))["from"] == "outsider"
        await caller.ok("call.cancel", call_id=cid)
    for peer in peers:
        await peer.ws.close()
    # After the resume window every session ended: one batch unsubscribes them and deletes presence.
    async with asyncio.timeout(5):
        while any(v is not None for v in await redis.mget([presence(n) for n in names])):  # noqa: ASYNC110 - polling Redis
            await asyncio.sleep(0.05)
    assert set((await caller.ok("presence.query", users=names))["presence"].values()) == {"offline"}
