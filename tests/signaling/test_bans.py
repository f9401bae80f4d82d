"""Bans act live: the control API's ban notice ends the user's sessions on the node (4003, no
resume, their call ends), and a banned user is refused at connect; a forged notice does nothing."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable

from control_api.sanctions import push_ban
from switchboard.keyspace import banned, presence, user_channel
from tests.signaling.conftest import Node
from tests.signaling.test_calls import call


async def test_a_ban_ends_the_users_sessions_and_call_at_once(node: Node, token: Callable[..., str], redis) -> None:  # type: ignore[no-untyped-def]
    bad, good = str(uuid.uuid4()), str(uuid.uuid4())
    pa, pb, call_id = await call(node, token, bad, good)
    second = await node.connect(token(bad))  # a second tab of the same user
    resume = pa.hello["resume_token"]  # type: ignore[attr-defined]
    await push_ban(redis, uuid.UUID(bad), None)
    for peer in (pa, second):
        error = await peer.expect("error", ref=None)
        assert error["code"] == "banned"
        assert await peer.closed() == 4003
    assert (await pb.expect("call.ended", call_id=call_id))["reason"] == "left"
    assert await redis.get(presence(bad)) is None
    # No resume, no new socket: refused with the same frame and code.
    again = await node.connect(token(bad), resume=resume, hello=False)
    assert (await again.expect("error"))["code"] == "banned"
    assert await again.closed() == 4003
    assert await redis.get(presence(bad)) is None  # a refused user never shows as online
    assert (await pb.ok("ping"))["pong"] is True  # the other party is untouched


async def test_a_timed_ban_lapses_and_the_user_connects_again(node: Node, token: Callable[..., str], redis) -> None:  # type: ignore[no-untyped-def]
    user = str(uuid.uuid4())
    await push_ban(redis, uuid.UUID(user), 60)
    assert 0 < await redis.ttl(banned(user)) <= 60
    refused = await node.connect(token(user), hello=False)
    assert await refused.closed() == 4003
    await redis.delete(banned(user))  # what the key's expiry does when the ban ends
    # A token from before the ban stays revoked (the ban moved the account's token epoch); a new one opens.
    stale = await node.connect(token(user), hello=False)
    assert await stale.closed() == 4001
    await asyncio.sleep(1.1)  # the signer's clock is in whole seconds: the next token is issued after the epoch
    peer = await node.connect(token(user))
    assert peer.hello["resumed"] is False  # type: ignore[attr-defined]


async def test_a_ban_notice_on_a_user_channel_is_only_a_message(node: Node, token: Callable[..., str], redis) -> None:  # type: ignore[no-untyped-def]
    user = str(uuid.uuid4())
    peer = await node.connect(token(user))
    # Anything relayed to a user travels on their channel; only the sanctions channel carries bans.
    await redis.publish(user_channel(user), json.dumps({"user": user, "kind": "ban"}))
    await redis.publish(user_channel(user), json.dumps({"type": "error", "code": "banned"}))
    assert (await peer.ok("ping"))["pong"] is True
    assert (await peer.ok("ping"))["pong"] is True
