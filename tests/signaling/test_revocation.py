"""Revoked tokens: a token issued before the account's epoch (``keyspace.token_epoch``, written by
the control API on ban, deletion, logout everywhere and password reset) is refused at connect,
at resume and at ``token.refresh`` (4001), and a ``revoke`` notice ends the sockets it kills at once."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from switchboard.ids import UserId
from switchboard.keyspace import SANCTIONS_CHANNEL, presence, token_epoch
from switchboard.tokens import Grants, TokenSigner
from tests.signaling.conftest import Node
from tests.signaling.test_calls import call

AGO_S = 200
"""Old tokens are issued this long ago (they live 300 s); the epoch falls between them and now."""


def user() -> str:
    return f"r{uuid.uuid4().hex[:10]}"


def old_token(signer: TokenSigner, who: str) -> str:
    return signer.sign(Grants(sub=UserId(who), verified=True), now=time.time() - AGO_S)


async def revoke(redis: Any, who: str, *, notice: bool = True) -> None:
    """What the control API does: the epoch first, then the notice."""
    await redis.set(token_epoch(who), int(time.time()) - AGO_S // 2)
    if notice:
        await redis.publish(SANCTIONS_CHANNEL, json.dumps({"user": who, "kind": "revoke"}))


async def test_a_token_older_than_the_epoch_is_refused_at_connect(node: Node, signer: TokenSigner,
                                                                 token: Callable[..., str], redis: Any) -> None:
    who = user()
    await revoke(redis, who, notice=False)
    refused = await node.connect(old_token(signer, who), hello=False)
    error = await refused.expect("error")
    assert error["code"] == "unauthorized" and "revoked" in error["message"]
    assert await refused.closed() == 4001
    assert await redis.get(presence(who)) is None  # never seen online
    by_auth = await node.connect(None)  # the same through the first message
    await by_auth.send({"type": "auth", "id": 5, "token": old_token(signer, who)})
    assert (await by_auth.expect("error", ref=5))["code"] == "unauthorized"
    assert await by_auth.closed() == 4001
    fresh = await node.connect(token(who))  # signed in again since: welcome
    assert (await fresh.ok("ping"))["pong"] is True
    # A second socket of a user already here is checked too.
    again = await node.connect(old_token(signer, who), hello=False)
    assert (await again.expect("error"))["code"] == "unauthorized"
    assert await again.closed() == 4001


async def test_a_revoke_notice_ends_the_old_sockets_and_keeps_new_ones(node: Node, signer: TokenSigner,
                                                                      token: Callable[..., str], redis: Any) -> None:
    who, other = user(), user()
    stale = await node.connect(old_token(signer, who))
    pa, pb, cid = await call(node, token, other, who)  # a call on a fresh token...
    resume = stale.hello["resume_token"]  # type: ignore[attr-defined]
    await revoke(redis, who)
    error = await stale.expect("error", ref=None)
    assert error["code"] == "unauthorized" and "revoked" in error["message"]
    assert await stale.closed() == 4001
    assert (await pb.ok("ping"))["pong"] is True  # ...stays, and so does the call
    await pa.ok("call.chat", call_id=cid, text="still here")
    assert (await pb.expect("call.chat"))["text"] == "still here"
    # The ended session cannot be resumed, not even with a fresh token.
    back = await node.connect(token(who), resume=resume)
    assert back.hello["resumed"] is False  # type: ignore[attr-defined]


async def test_a_revoke_during_a_call_ends_it(node: Node, signer: TokenSigner, token: Callable[..., str],
                                              redis: Any) -> None:
    who, other = user(), user()
    pa = await node.connect(old_token(signer, who))
    pb = await node.connect(token(other))
    cid = (await pa.ok("call.invite", to=other))["call_id"]
    await pb.expect("call.incoming", call_id=cid)
    await pb.ok("call.accept", call_id=cid)
    await revoke(redis, who)
    assert await pa.closed() == 4001
    assert (await pb.expect("call.ended", call_id=cid))["reason"] == "left"


async def test_resume_and_refresh_with_a_revoked_token_close_4001(node: Node, signer: TokenSigner,
                                                                  redis: Any) -> None:
    who = user()
    first = await node.connect(old_token(signer, who))
    resume = first.hello["resume_token"]  # type: ignore[attr-defined]
    await first.ws.close()
    await revoke(redis, who, notice=False)  # (the notice could be lost: the doors still hold)
    again = await node.connect(old_token(signer, who), resume=resume, hello=False)
    assert (await again.expect("error"))["code"] == "unauthorized"
    assert await again.closed() == 4001
    # token.refresh on a socket that predates the epoch (its notice lost): refused, and the socket ends.
    other = user()
    peer = await node.connect(old_token(signer, other))
    await revoke(redis, other, notice=False)
    reply = await peer.request("token.refresh", token=old_token(signer, other))
    assert reply["type"] == "error" and reply["code"] == "unauthorized" and "revoked" in reply["message"]
    assert await peer.closed() == 4001
