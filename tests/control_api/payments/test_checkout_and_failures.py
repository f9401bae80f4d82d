"""Checkout Sessions (through the tests' fake: localstripe has none), Stripe not answering, status
mirroring for every subscription status, failed webhook acts retried, and fuzzed inputs."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from control_api.payments.models import StripeEvent
from control_api.payments.types import SUBSCRIPTION_STATUSES, Sub
from tests.control_api.conftest import Api
from tests.control_api.payments.checkout_fake import FakeCheckout, faking
from tests.control_api.payments.conftest import WEBHOOK_SECRET, Stripe, payments_settings


async def test_checkout_sessions_credit_packs_and_start_premium(make_api: Callable[..., Awaitable[Api]],
                                                                  localstripe: str) -> None:
    fakes: list[FakeCheckout] = []

    api = await make_api(payments=payments_settings(localstripe), gateway=faking(fakes))
    stripe = Stripe(localstripe, api)
    try:
        user = await api.user()
        status, body = await api.call("POST", "/payments/checkout", user, json={"item": "medium"})
        assert status == 201 and body["url"].startswith("https://checkout.stripe.test/"), body
        session_id = body["url"].rsplit("/", 1)[1]

        async def deliver(raw: bytes, signature: str) -> Any:
            return await api.call("POST", "/payments/webhook", data=raw,
                                  headers={"Stripe-Signature": signature, "Content-Type": "application/json"})

        status, answer = await fakes[0].complete(session_id, await stripe.card("ok"), deliver, WEBHOOK_SECRET)
        assert status == 200 and answer["processed"] is True, answer
        assert (await stripe.wallet(user))["available"] == 250
        status, body = await api.call("POST", "/payments/checkout", user, json={"item": "premium"})
        status, answer = await fakes[0].complete(body["url"].rsplit("/", 1)[1], await stripe.card("ok"), deliver,
                                                 WEBHOOK_SECRET)
        assert answer["processed"] is True
        status, body = await api.call("GET", "/payments/premium", user)
        assert body["premium"] is True
        assert (await api.call("POST", "/payments/checkout", user, json={"item": "nope"}))[0] == 404
    finally:
        await stripe.close()


@pytest.fixture
async def silent_stripe() -> AsyncIterator[str]:
    """A server that accepts connections and never answers: Stripe hanging."""
    held: list[asyncio.StreamWriter] = []

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_stripe_not_answering_is_a_clear_503(make_api: Callable[..., Awaitable[Api]], silent_stripe: str,
                                                   localstripe: str) -> None:
    api = await make_api(payments=payments_settings(silent_stripe, stripe_timeout_s=0.3, stripe_retries=1))
    user = await api.user()
    status, body = await api.call("POST", "/payments/credit-packs/small/intent", user,
                                  json={"payment_method": "pm_x"}, headers={"Idempotency-Key": "k1"})
    assert status == 503 and "retry" in body["detail"], body
    status, body = await api.call("GET", "/wallet", user)
    assert body["available"] == 0 and body["history"] == []


async def test_every_subscription_status_is_mirrored(stripe_api: Stripe) -> None:
    user = await stripe_api.api.user()
    payments = stripe_api.payments
    premium_for = {}
    for status in sorted(SUBSCRIPTION_STATUSES):
        sub = Sub(id=f"sub_{uuid.uuid4().hex[:10]}", customer="cus_none", status=status, plan="p",
                  current_period_end=None, cancel_at_period_end=False, metadata={"user_id": user.id})
        premium_for[status] = await payments.mirror(sub)
        await payments.mirror(Sub(sub.id, sub.customer, "canceled", "p", None, False, sub.metadata))
    assert {s for s, p in premium_for.items() if p} == {"active", "trialing", "past_due"}
    assert not any(premium_for[s] for s in ("incomplete", "incomplete_expired", "canceled", "unpaid", "paused"))


async def test_a_failed_act_is_kept_and_retried(stripe_api: Stripe) -> None:
    event = {"id": f"evt_{uuid.uuid4().hex[:16]}", "type": "payment_intent.succeeded", "created": 1,
             "data": {"object": {"id": "pi_does_not_exist"}}}
    status, answer = await stripe_api.deliver(event)
    assert status == 200 and answer["processed"] is False  # acknowledged: it is in the inbox
    async with stripe_api.payments.sessions() as session:
        row = await session.get(StripeEvent, event["id"])
    assert row is not None and row.processed_at is None and row.attempts == 1 and row.error

    async def retried() -> bool:
        async with stripe_api.payments.sessions() as session:
            again = await session.get(StripeEvent, event["id"])
        return again is not None and again.attempts >= 2

    await stripe_api.until(retried)  # the sweeper (every 0.5 s here) tries again


TEXT = st.one_of(st.text(), st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)),
                 st.integers(), st.floats(allow_nan=True), st.none(), st.booleans(), st.lists(st.integers()))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tip_id=TEXT, amount=TEXT, credits=TEXT, card=TEXT)
async def test_fuzzed_money_inputs_never_fail_the_server(stripe_api: Stripe, tip_id: Any, amount: Any,
                                                         credits: Any, card: Any) -> None:
    if not hasattr(stripe_api, "fuzz_users"):
        stripe_api.fuzz_users = (await stripe_api.api.user(), await stripe_api.api.user())  # type: ignore[attr-defined]
    fan, creator = stripe_api.fuzz_users  # type: ignore[attr-defined]
    for path, body in ((f"/users/{creator.id}/tips", {"id": tip_id, "amount": amount}),
                       ("/payments/payouts", {"credits": credits}),
                       ("/payments/credit-packs/small/intent", {"payment_method": card})):
        raw = json.dumps(body).encode()  # lone surrogates travel as \\ud800 escapes
        status, answer = await stripe_api.api.call("POST", path, fan, data=raw,
                                                   headers={"Content-Type": "application/json"})
        assert status in (400, 402, 404, 409, 422, 201, 200), (path, body, status, answer)  # 400: a lone surrogate
    assert (await stripe_api.wallet(fan))["available"] >= 0


async def test_a_payout_request_is_recorded_once(make_api: Callable[..., Awaitable[Api]], localstripe: str) -> None:
    api = await make_api(payments=payments_settings(localstripe, payout_minimum=10))
    stripe = Stripe(localstripe, api)
    try:
        fan, creator = await api.user(), await api.user()
        await api.call("POST", "/payments/credit-packs/small/intent", fan,
                       json={"payment_method": await stripe.card("ok")})
        await api.call("POST", f"/users/{creator.id}/tips", fan, json={"id": "t", "amount": 100})
        key = {"Idempotency-Key": "payout-1"}
        first = await api.call("POST", "/payments/payouts", creator, json={"credits": 50}, headers=key)
        again = await api.call("POST", "/payments/payouts", creator, json={"credits": 50}, headers=key)
        assert first == again and first[0] == 201 and first[1]["status"] == "requested", first
        status, body = await api.call("POST", "/payments/payouts", creator, json={"credits": 50})
        assert status == 402 and "credits" in body["detail"]  # 20 left
        status, earnings = await api.call("GET", "/payments/earnings", creator)
        assert earnings["available"] == 20
    finally:
        await stripe.close()
