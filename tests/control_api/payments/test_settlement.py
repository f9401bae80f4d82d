"""A pack's ``payment_intent.succeeded`` carrying the whole intent (as Stripe sends it) is stored and
credited from the signed object in one statement, without asking Stripe again: once under
concurrent deliveries, never rolled back or re-credited by older objects, and when that statement
cannot settle it the inbox still stores the event before the answer."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select

from control_api.ledger.models import LedgerTransfer
from control_api.payments.models import Purchase, StripeEvent
from control_api.payments.types import Intent
from control_api.webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from tests.control_api.payments.conftest import Stripe, payments_settings


def _event(kind: str, obj: dict[str, Any], *, created: int | None = None) -> dict[str, Any]:
    return {"id": f"evt_{uuid.uuid4().hex[:16]}", "object": "event", "type": kind,
            "created": int(time.time()) if created is None else created, "data": {"object": obj}}


@pytest.fixture
async def quiet_stripe(make_api: Any, localstripe: str) -> AsyncIterator[Stripe]:
    """The API and localstripe, without localstripe's own deliveries: only the test's events arrive."""
    hands = Stripe(localstripe, await make_api(payments=payments_settings(localstripe)))
    try:
        yield hands
    finally:
        await hands.close()


def _count_reads(stripe: Stripe) -> list[str]:
    """Every intent id the API reads from Stripe from now on."""
    gateway = stripe.payments.gateway
    read, reads = gateway.get_intent, []

    async def counted(intent_id: str) -> Intent:
        reads.append(intent_id)
        return await read(intent_id)

    gateway.get_intent = counted  # type: ignore[method-assign]
    return reads


async def _paid_in_stripe(stripe: Stripe) -> tuple[Any, dict[str, Any]]:
    """A user and a small pack's intent that succeeded in Stripe (3-D Secure passed) behind the API's
    back: only the webhook can credit it. The intent as Stripe's event carries it."""
    user = await stripe.api.user()
    _, body = await stripe.api.call("POST", "/payments/credit-packs/small/intent", user,
                                    json={"payment_method": await stripe.card("3ds")})
    await stripe.authenticate(body["intent_id"], body["client_secret"])
    intent = await stripe.stripe("GET", f"/v1/payment_intents/{body['intent_id']}")
    assert intent["status"] == "succeeded" and intent["metadata"]["user_id"] == user.id
    return user, intent


async def test_a_whole_event_five_times_at_once_credits_once_without_asking_stripe(quiet_stripe: Stripe) -> None:
    stripe = quiet_stripe
    async with stripe.payments.sessions() as session, session.begin():
        session.add(WebhookEndpoint(url="http://127.0.0.1:9/hook", events=["credits_purchased"], secret="whsec_z"))
    user, intent = await _paid_in_stripe(stripe)
    reads = _count_reads(stripe)
    event = _event("payment_intent.succeeded", intent)
    answers = await asyncio.gather(*(stripe.deliver(event) for _ in range(5)))
    assert all(status == 200 and answer["processed"] is True for status, answer in answers), answers
    assert sum(1 for _, answer in answers if not answer["duplicate"]) == 1
    assert intent["id"] not in reads  # the signed object was enough
    assert (await stripe.wallet(user))["available"] == 100
    async with stripe.payments.sessions() as session:
        stored = await session.get(StripeEvent, event["id"])
        assert stored is not None and stored.processed_at is not None and stored.attempts == 1
        assert await session.scalar(select(func.count()).select_from(LedgerTransfer)
                                    .where(LedgerTransfer.batch == f"purchase:{intent['id']}")) == 1
        purchase = await session.get(Purchase, intent["id"])
        assert purchase is not None and (purchase.status, purchase.credits, purchase.amount) == ("succeeded", 100, 499)
        outbox = list(await session.scalars(select(WebhookEvent)
                                            .where(WebhookEvent.id == f"evt_purchase_{intent['id']}")))
        assert [(e.data["user_id"], e.data["credits"]) for e in outbox] == [(user.id, 100)]
        assert await session.scalar(select(func.count()).select_from(WebhookDelivery)
                                    .where(WebhookDelivery.event_id == f"evt_purchase_{intent['id']}")) == 1


async def test_older_objects_after_the_payment_roll_nothing_back(quiet_stripe: Stripe) -> None:
    stripe = quiet_stripe
    user, intent = await _paid_in_stripe(stripe)
    paid_at = int(intent["created"])
    status, answer = await stripe.deliver(_event("payment_intent.succeeded", intent, created=paid_at + 2))
    assert status == 200 and answer["processed"] is True
    # Delivered late, each carrying the intent as it was before it succeeded.
    for kind, was in (("payment_intent.requires_action", "requires_action"), ("payment_intent.created",
                                                                              "requires_payment_method")):
        status, answer = await stripe.deliver(_event(kind, {**intent, "status": was}, created=paid_at))
        assert status == 200 and answer["processed"] is True, answer
    async with stripe.payments.sessions() as session:
        purchase = await session.get(Purchase, intent["id"])
        assert purchase is not None and purchase.status == "succeeded"
    assert (await stripe.wallet(user))["available"] == 100
    # Refunded; then the payment's event again (another id, as a second endpoint or a resend has):
    # it credits nothing again.
    await stripe.stripe("POST", "/v1/refunds", payment_intent=intent["id"])
    status, answer = await stripe.deliver(_event("charge.refunded", {"id": "ch_x", "object": "charge",
                                                                     "payment_intent": intent["id"]}))
    assert status == 200 and answer["processed"] is True
    status, answer = await stripe.deliver(_event("payment_intent.succeeded", intent, created=paid_at + 2))
    assert status == 200 and answer == {**answer, "duplicate": False, "processed": True}
    wallet = await stripe.wallet(user)
    assert wallet["available"] == 0 and sorted(h["kind"] for h in wallet["history"]) == ["purchase", "refund"]


async def test_an_event_the_statement_cannot_settle_is_still_stored_first(quiet_stripe: Stripe) -> None:
    stripe = quiet_stripe
    nobody = str(uuid.uuid4())  # no such account: the statement fails whole, the inbox stores it
    obj = {"id": f"pi_{uuid.uuid4().hex[:14]}", "object": "payment_intent", "status": "succeeded", "amount": 499,
           "currency": "eur", "metadata": {"user_id": nobody, "pack": "small", "credits": "100"}}
    event = _event("payment_intent.succeeded", obj)
    status, answer = await stripe.deliver(event)
    assert status == 200 and answer["duplicate"] is False and answer["processed"] is False, answer
    async with stripe.payments.sessions() as session:
        stored = await session.get(StripeEvent, event["id"])
        assert stored is not None and stored.processed_at is None and stored.error  # the sweeper retries it
        assert await session.get(Purchase, obj["id"]) is None
        assert await session.scalar(select(func.count()).select_from(LedgerTransfer)
                                    .where(LedgerTransfer.batch == f"purchase:{obj['id']}")) == 0
