"""Payment facts become webhook events once each: a pack bought (credited twice over: the API's own
check and Stripe's event), its refund (delivered twice), premium turned on (mirrored twice)."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from control_api.payments.types import Sub
from control_api.webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from tests.control_api.payments.conftest import Stripe


async def test_purchase_refund_and_premium_are_recorded_once(stripe_api: Stripe) -> None:
    sessions = stripe_api.payments.sessions
    async with sessions() as session, session.begin():
        session.add(WebhookEndpoint(url="http://127.0.0.1:9/hook", events=["credits_purchased", "credits_refunded"],
                                    secret="whsec_x"))
    fan = await stripe_api.api.user()
    card = await stripe_api.card("ok")
    _, body = await stripe_api.api.call("POST", "/payments/credit-packs/small/intent", fan,
                                        json={"payment_method": card})
    intent = body["intent_id"]
    await stripe_api.payments.sync_intent(intent)  # what localstripe's event would do again
    await stripe_api.stripe("POST", "/v1/refunds", payment_intent=intent)
    event = {"id": f"evt_{uuid.uuid4().hex[:14]}", "type": "charge.refunded", "created": 1,
             "data": {"object": {"id": "ch_x", "object": "charge", "payment_intent": intent}}}
    for _ in range(2):
        assert (await stripe_api.deliver(event))[0] == 200
    sub = Sub(f"sub_{uuid.uuid4().hex[:8]}", "cus_x", "active", "premium", None, False, {"user_id": fan.id})
    for _ in range(2):
        assert await stripe_api.payments.mirror(sub) is True
    async with sessions() as session:
        rows = list(await session.scalars(select(WebhookEvent).order_by(WebhookEvent.created_at)))
        deliveries = list(await session.scalars(select(WebhookDelivery)))
    by_type = {r.type: r for r in rows}
    assert sorted(r.type for r in rows) == ["credits_purchased", "credits_refunded", "premium_changed"]
    bought = by_type["credits_purchased"]
    assert bought.id == f"evt_purchase_{intent}"
    assert (bought.data["user_id"], bought.data["credits"], bought.data["intent_id"]) == (fan.id, 100, intent)
    refunded = by_type["credits_refunded"].data
    assert (refunded["kind"], refunded["refunded"], refunded["credits_taken"]) == ("refund", 499, 100)
    assert by_type["premium_changed"].data == {"user_id": fan.id, "premium": True}
    # The endpoint asked for two types: premium_changed has no delivery for it.
    assert sorted(d.event_id for d in deliveries) == sorted([bought.id, by_type["credits_refunded"].id])


async def test_a_purchase_credited_by_stripes_event_is_recorded_once(stripe_api: Stripe) -> None:
    """The webhook writes the purchase's event in its inbox transaction: once, with its delivery,
    however many times the event comes."""
    sessions = stripe_api.payments.sessions
    async with sessions() as session, session.begin():
        session.add(WebhookEndpoint(url="http://127.0.0.1:9/hook", events=["credits_purchased"], secret="whsec_y"))
    fan = await stripe_api.api.user()
    card = await stripe_api.card("3ds")
    _, body = await stripe_api.api.call("POST", "/payments/credit-packs/small/intent", fan,
                                        json={"payment_method": card})
    intent = body["intent_id"]
    await stripe_api.authenticate(intent, body["client_secret"])  # paid in Stripe; the event credits
    event = {"id": f"evt_{uuid.uuid4().hex[:14]}", "type": "payment_intent.succeeded", "created": 1,
             "data": {"object": {"id": intent, "object": "payment_intent"}}}
    for _ in range(2):
        status, answer = await stripe_api.deliver(event)
        assert status == 200 and answer["processed"] is True, answer
    assert (await stripe_api.wallet(fan))["available"] == 100
    async with sessions() as session:
        events = list(await session.scalars(select(WebhookEvent).where(WebhookEvent.id == f"evt_purchase_{intent}")))
        deliveries = list(await session.scalars(select(WebhookDelivery)
                                                .where(WebhookDelivery.event_id == f"evt_purchase_{intent}")))
    assert [e.data["credits"] for e in events] == [100]
    assert len(deliveries) == 1
