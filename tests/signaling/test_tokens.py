"""Tokens on an open socket: expiry closes it (4001) unless ``token.refresh`` came in time; premium
reaches the queue only from the token's claim."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from switchboard.ids import UserId
from switchboard.tokens import Grants, TokenSigner
from tests.signaling.conftest import Node

SHORT_S = 1
"""Lifetime of the tokens that must run out during a test (the verifier's 5 s leeway admits them)."""


def short(signer: TokenSigner, user: str) -> str:
    return signer.sign(Grants(sub=UserId(user)), ttl_s=SHORT_S)


async def test_socket_closed_with_4001_when_its_token_expires(node: Node, signer: TokenSigner) -> None:
    peer = await node.connect(short(signer, "tia"))
    assert peer.hello["token_expires_at"] > 0  # type: ignore[attr-defined]
    error = await peer.expect("error", ref=None)
    assert error["code"] == "unauthorized" and "token.refresh" in error["message"]
    assert await peer.closed() == 4001


async def test_refresh_in_time_keeps_the_socket(node: Node, signer: TokenSigner,
                                                token: Callable[..., str]) -> None:
    peer = await node.connect(short(signer, "uma"))
    fresh = token("uma")
    reply = await peer.ok("token.refresh", token=fresh)
    assert reply["token_expires_at"] > peer.hello["token_expires_at"]  # type: ignore[attr-defined]
    await asyncio.sleep(SHORT_S + 1)  # past the first token's expiry
    assert (await peer.ok("ping"))["pong"] is True
    assert not [m for m in peer.seen if m["type"] == "error"]


async def test_refresh_refused_for_another_user_or_a_bad_token(node: Node, signer: TokenSigner,
                                                               token: Callable[..., str]) -> None:
    peer = await node.connect(short(signer, "val"))
    assert (await peer.request("token.refresh", token=token("wes")))["code"] == "forbidden"
    assert (await peer.request("token.refresh", token="not.a.jwt"))["code"] == "unauthorized"
    assert (await peer.request("token.refresh", token=short(signer, "val")[:-4] + "AAAA"))["code"] == "unauthorized"
    # Refused refreshes leave the old expiry in force.
    assert (await peer.expect("error", ref=None))["code"] == "unauthorized"
    assert await peer.closed() == 4001


async def test_resume_with_a_fresh_token_after_expiry(node: Node, signer: TokenSigner,
                                                      token: Callable[..., str]) -> None:
    first = await node.connect(short(signer, "xia"))
    resume = first.hello["resume_token"]  # type: ignore[attr-defined]
    assert await first.closed() == 4001
    again = await node.connect(token("xia"), resume=resume)
    assert again.hello["resumed"] is True  # type: ignore[attr-defined]
    assert again.hello["session_id"] == first.hello["session_id"]  # type: ignore[attr-defined]


async def test_premium_filters_only_with_the_premium_claim(node: Node, token: Callable[..., str]) -> None:
    ticket = {"country": "FR", "age": 30, "filters": {"age_min": 25, "tags": ["music"]}}
    plain = await node.connect(token("yan"))
    reply = await plain.ok("queue.join", ticket=ticket, premium=True)  # a client's own word counts for nothing
    assert sorted(reply["ignored_filters"]) == ["age_min", "tags"]
    assert (await plain.request("queue.join", ticket={**ticket, "premium": True}))["code"] == "bad_ticket"
    await plain.ok("queue.leave")
    paying = await node.connect(token("zoe", premium=True))
    assert (await paying.ok("queue.join", ticket=ticket))["ignored_filters"] == []
