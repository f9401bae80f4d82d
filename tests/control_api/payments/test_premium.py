"""Premium through localstripe's Subscriptions, seen by a real node and the real ticket store:
premium filters count on a fresh queue.join (and on a live socket) while subscribed, not after."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from control_api.payments.service import PAYMENTS
from matchmaker.store import RedisTicketStore
from signaling.node import NodeDeps, install_node
from switchboard.health import Readiness
from switchboard.settings import NodeSettings
from switchboard.tokens import TokenVerifier
from tests.control_api.conftest import ON_CLUSTER_TOO, User
from tests.control_api.payments.conftest import Stripe
from tests.signaling.conftest import Node, Peer
from tests.signaling.fakes import FakeMedia, FakeTickets, media_opener

TICKET = {"country": "FR", "age": 30, "filters": {"age_min": 25, "age_max": 40}}


@pytest.fixture
async def real_node(stripe_api: Stripe, redis_url: str, tmp_path: Any) -> AsyncIterator[Node]:
    """A node verifying the API's tokens, with the real Redis ticket store (media is a fake)."""
    app = web.Application()
    media = FakeMedia()
    install_node(app, NodeDeps(
        NodeSettings(), redis_url, Readiness(), tmp_path,
        verifier=TokenVerifier(stripe_api.api.key.public_key(), issuer="switchboard"),
        open_media=media_opener(media), open_tickets=lambda r: RedisTicketStore(r, 300)))
    client = TestClient(TestServer(app))
    await client.start_server()
    yield Node(client, media, FakeTickets(None), app)  # type: ignore[arg-type]
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.close(), 10)


async def _socket(stripe: Stripe, node: Node, user: User) -> tuple[Peer, bool]:
    status, body = await stripe.api.call("POST", "/ws-token", user)
    assert status == 200, body
    return await node.connect(body["token"]), bool(body["grants"]["premium"])


async def _join(peer: Peer) -> list[str]:
    reply = await peer.ok("queue.join", ticket=TICKET)
    await peer.ok("queue.leave")
    return list(reply["ignored_filters"])


async def _filters_kept(peer: Peer) -> bool:
    return await _join(peer) == []


async def _filters_dropped(peer: Peer) -> bool:
    return await _join(peer) == ["age_min", "age_max"]


async def test_premium_filters_follow_the_subscription(stripe_api: Stripe, real_node: Node) -> None:
    user = await stripe_api.api.user()
    before, premium = await _socket(stripe_api, real_node, user)
    assert premium is False and await _join(before) == ["age_min", "age_max"]

    card = await stripe_api.card("ok")
    status, body = await stripe_api.api.call("POST", "/payments/premium", user, json={"payment_method": card})
    assert status == 201 and body["premium"] is True and body["subscription"]["status"] == "active", body
    fresh, premium = await _socket(stripe_api, real_node, user)
    assert premium is True and await _join(fresh) == []  # a fresh token carries it, no new login
    await stripe_api.until(lambda: _filters_kept(before))  # the socket opened before the purchase takes it live
    status, _ = await stripe_api.api.call("POST", "/payments/premium", user, json={})
    assert status == 409

    status, body = await stripe_api.api.call("DELETE", "/payments/premium", user)
    assert status == 200 and body["premium"] is False and body["subscription"]["status"] == "canceled", body
    after, premium = await _socket(stripe_api, real_node, user)
    assert premium is False and await _join(after) == ["age_min", "age_max"]
    await stripe_api.until(lambda: _filters_dropped(fresh))
    # localstripe's own webhooks (created, deleted) arrive later and change nothing.
    await asyncio.sleep(1.5)
    status, body = await stripe_api.api.call("GET", "/payments/premium", user)
    assert body["premium"] is False


async def test_a_declined_card_gives_no_premium(stripe_api: Stripe) -> None:
    user = await stripe_api.api.user()
    card = await stripe_api.card("declined")
    status, body = await stripe_api.api.call("POST", "/payments/premium", user, json={"payment_method": card})
    assert status == 201 and body["premium"] is False and body["subscription"]["status"] == "incomplete", body
    status, body = await stripe_api.api.call("POST", "/ws-token", user)
    assert body["grants"]["premium"] is False


@ON_CLUSTER_TOO
async def test_the_rate_limit_tier_follows_premium_at_once(make_api: Any, localstripe: str) -> None:
    from control_api.payments.types import Sub
    from tests.control_api.conftest import api_settings
    from tests.control_api.payments.conftest import payments_settings

    api = await make_api(api_settings(rate_user_per_min=5, rate_premium_per_min=1000),
                         payments=payments_settings(localstripe))
    user = await api.user()  # its access token says "not premium" for the next 15 minutes
    payments = api.app._subapps[0][PAYMENTS]  # type: ignore[attr-defined]
    sub = Sub("sub_tier_test", "cus_x", "active", "p", None, False, {"user_id": user.id})
    assert await payments.mirror(sub) is True
    statuses = [(await api.call("GET", "/wallet", user))[0] for _ in range(12)]
    assert statuses == [200] * 12  # the premium tier, though the token predates it
    await payments.mirror(Sub(sub.id, sub.customer, "canceled", "p", None, False, sub.metadata))
    assert (await api.call("GET", "/wallet", user))[0] == 429
