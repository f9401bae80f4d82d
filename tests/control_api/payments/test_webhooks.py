"""Stripe webhooks: signatures (good, bad, stale, rolled secrets), duplicates delivered at once,
and events out of order; each leaves exactly one effect."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from control_api.ledger.models import LedgerTransfer
from control_api.payments.models import StripeEvent
from control_api.payments.signature import BadSignature, sign, verify
from switchboard.keyspace import SANCTIONS_CHANNEL
from tests.control_api.conftest import api_settings
from tests.control_api.payments.conftest import WEBHOOK_SECRET, Stripe, payments_settings
from tests.control_api.test_admission import held_token_request
from tests.control_api.test_rooms import new_room


def _event(kind: str, obj: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    return {"id": event_id or f"evt_{uuid.uuid4().hex[:16]}", "object": "event", "type": kind,
            "created": int(time.time()), "data": {"object": obj}}


def test_signature_scheme() -> None:
    body = b'{"id": "evt_1"}'
    now = 1_800_000_000
    header = sign(body, "whsec_a", now)
    assert verify(body, header, "whsec_a", now=now + 299) == now
    # While a secret rolls, Stripe signs with both: any one v1 that matches is enough.
    rolled = f"{sign(body, 'whsec_old', now)},v1={sign(body, 'whsec_a', now).split('v1=')[1]},v0=abc"
    assert verify(body, rolled, "whsec_a", now=now) == now
    for bad in (None, "", "t=1", "v1=ab", f"t=x,v1={'0' * 64}", sign(body, "whsec_b", now),
                sign(body + b" ", "whsec_a", now)):
        with pytest.raises(BadSignature):
            verify(body, bad, "whsec_a", now=now)
    with pytest.raises(BadSignature, match="tolerance"):
        verify(body, header, "whsec_a", now=now + 301)
    with pytest.raises(BadSignature, match="tolerance"):
        verify(body, header, "whsec_a", now=now - 301)  # from the future too
    with pytest.raises(BadSignature):
        verify(body, header, "", now=now)  # no secret configured: nothing is accepted


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=200), st.text(max_size=200))
def test_arbitrary_headers_never_verify(body: bytes, header: str) -> None:
    with pytest.raises(BadSignature):
        verify(body, header, "whsec_a")


async def test_good_bad_and_stale_signatures_at_the_door(stripe_api: Stripe) -> None:
    event = _event("ping.unknown", {"id": "x"})
    status, answer = await stripe_api.deliver(event, secret="whsec_wrong")
    assert status == 400 and "signature" in answer["detail"]
    status, answer = await stripe_api.deliver(event, at=int(time.time()) - 301)
    assert status == 400 and "tolerance" in answer["detail"]
    status, answer = await stripe_api.deliver(event, header="")
    assert status == 400
    status, answer = await stripe_api.api.call("POST", "/payments/webhook", data=b"not json",
                                               headers={"Stripe-Signature": sign(b"not json", WEBHOOK_SECRET)})
    assert status == 400
    async with stripe_api.payments.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(StripeEvent)) == 0  # nothing stored
    status, answer = await stripe_api.deliver(event)  # an unknown type: stored, acknowledged
    assert status == 200 and answer == {"received": True, "id": event["id"], "duplicate": False, "processed": True}
    status, answer = await stripe_api.deliver(event)
    assert status == 200 and answer["duplicate"] is True


async def test_the_same_event_five_times_at_once_credits_once(stripe_api: Stripe) -> None:
    user = await stripe_api.api.user()
    card = await stripe_api.card("3ds")
    _, body = await stripe_api.api.call("POST", "/payments/credit-packs/small/intent", user,
                                        json={"payment_method": card})
    await stripe_api.authenticate(body["intent_id"], body["client_secret"])
    event = _event("payment_intent.succeeded", {"id": body["intent_id"], "object": "payment_intent"})
    answers = await asyncio.gather(*(stripe_api.deliver(event) for _ in range(5)))
    assert all(status == 200 for status, _ in answers), answers
    assert sum(1 for _, a in answers if not a["duplicate"]) == 1
    await stripe_api.until(lambda: _processed(stripe_api, event["id"]))
    # localstripe's own delivery of the same fact (another event id) lands too: still one credit.
    await stripe_api.until(lambda: _count(stripe_api, "SELECT count(*) FROM stripe_events WHERE type = "
                                          "'payment_intent.succeeded' AND processed_at IS NOT NULL AND "
                                          f"payload->'data'->'object'->>'id' = '{body['intent_id']}'", 2))
    assert (await stripe_api.wallet(user))["available"] == 100
    async with stripe_api.payments.sessions() as session:
        n = await session.scalar(select(func.count()).select_from(LedgerTransfer)
                                 .where(LedgerTransfer.batch == f"purchase:{body['intent_id']}"))
    assert n == 1


async def test_subscription_updated_before_created(stripe_api: Stripe, redis: Any) -> None:
    user = await stripe_api.api.user()
    payments = stripe_api.payments
    customer = await payments.customer_for(uuid.UUID(user.id))
    card = await stripe_api.card("ok")
    await payments.gateway.attach_card(customer, card)
    sub = await stripe_api.stripe("POST", "/v1/subscriptions", customer=customer,
                                  items={"0": {"plan": payments.settings.premium_plan}},
                                  metadata={"user_id": user.id})
    assert sub["status"] == "active"
    pubsub = redis.pubsub()
    await pubsub.subscribe(SANCTIONS_CHANNEL)
    # Out of order, and with stale bodies: the handler re-reads the subscription from Stripe.
    updated = _event("customer.subscription.updated", {**sub, "status": "past_due"})
    created = _event("customer.subscription.created", {**sub, "status": "incomplete"})
    for event in (updated, created, updated):
        status, answer = await stripe_api.deliver(event)
        assert status == 200 and answer["processed"] is True, answer
    status, body = await stripe_api.api.call("GET", "/payments/premium", user)
    assert body["premium"] is True and body["subscription"]["status"] == "active"
    await stripe_api.stripe("DELETE", f"/v1/subscriptions/{sub['id']}")
    deleted = _event("customer.subscription.deleted", {**sub, "status": "canceled"})
    late_created = _event("customer.subscription.created", {**sub, "status": "active"})
    for event in (deleted, late_created):
        await stripe_api.deliver(event)
    status, body = await stripe_api.api.call("GET", "/payments/premium", user)
    assert body["premium"] is False and body["subscription"]["status"] == "canceled"
    notices = []
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        item = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if item is not None:
            notices.append(json.loads(item["data"]))
    await pubsub.aclose()
    mine = [n for n in notices if n.get("user") == user.id]
    assert mine == [{"user": user.id, "kind": "premium", "premium": True},
                    {"user": user.id, "kind": "premium", "premium": False}]  # one effect each way


async def _processed(stripe: Stripe, event_id: str) -> bool:
    async with stripe.payments.sessions() as session:
        row = await session.get(StripeEvent, event_id)
        return row is not None and row.processed_at is not None


async def _count(stripe: Stripe, sql: str, want: int) -> bool:
    async with stripe.payments.sessions() as session:
        return int(await session.scalar(text(sql)) or 0) >= want


async def test_a_dispute_takes_credits_back_and_a_won_one_returns_them(stripe_api: Stripe) -> None:
    user = await stripe_api.api.user()
    card = await stripe_api.card("ok")
    _, body = await stripe_api.api.call("POST", "/payments/credit-packs/small/intent", user,
                                        json={"payment_method": card})
    dispute = {"id": f"dp_{uuid.uuid4().hex[:12]}", "object": "dispute", "amount": 499,
               "payment_intent": body["intent_id"], "status": "needs_response"}
    closed = _event("charge.dispute.closed", {**dispute, "status": "won"})
    created = _event("charge.dispute.created", dispute)
    status, answer = await stripe_api.deliver(created)
    assert status == 200 and answer["processed"] is True
    assert (await stripe_api.wallet(user))["available"] == 0
    for event in (closed, created, closed):  # replays change nothing
        await stripe_api.deliver(event)
    wallet = await stripe_api.wallet(user)
    assert wallet["available"] == 100 and [h["kind"] for h in wallet["history"]] == [
        "dispute_won", "dispute", "purchase"]


async def test_a_refund_seen_before_its_payment_never_leaves_credits(stripe_api: Stripe) -> None:
    user = await stripe_api.api.user()
    card = await stripe_api.card("3ds")
    _, body = await stripe_api.api.call("POST", "/payments/credit-packs/small/intent", user,
                                        json={"payment_method": card})
    await stripe_api.authenticate(body["intent_id"], body["client_secret"])  # paid in Stripe...
    await stripe_api.stripe("POST", "/v1/refunds", payment_intent=body["intent_id"])  # ...and refunded
    refunded = _event("charge.refunded", {"id": "ch_x", "object": "charge", "payment_intent": body["intent_id"]})
    status, answer = await stripe_api.deliver(refunded)  # before payment_intent.succeeded
    assert status == 200 and answer["processed"] is True
    succeeded = _event("payment_intent.succeeded", {"id": body["intent_id"], "object": "payment_intent"})
    await stripe_api.deliver(succeeded)
    wallet = await stripe_api.wallet(user)
    assert wallet["available"] == 0 and sorted(h["kind"] for h in wallet["history"]) == ["purchase", "refund"]


async def test_a_saturated_api_still_takes_stripes_webhook(make_api: Any, localstripe: str) -> None:
    """A 503 to Stripe delays a payment by its retry schedule (hours): the webhook has admission
    slots of its own, so it is served while every other request is shed."""
    api = await make_api(api_settings(max_in_flight=1, admission_queue=0), payments=payments_settings(localstripe))
    hands = Stripe(localstripe, api)
    try:
        user, owner = await api.user(), await api.user()
        card = await hands.card("3ds")
        _, body = await api.call("POST", "/payments/credit-packs/small/intent", user, json={"payment_method": card})
        await hands.authenticate(body["intent_id"], body["client_secret"])  # paid in Stripe; the API waits
        held, task = await held_token_request(api, owner, await new_room(api, owner))  # the one slot is taken
        status, _ = await api.call("GET", "/wallet", user)
        assert status == 503  # an ordinary request is shed
        event = _event("payment_intent.succeeded", {"id": body["intent_id"], "object": "payment_intent"})
        # A forgery takes no priority slot: it meets the saturated gate like any request (503), never
        # the handler (which would answer 400), so a forged flood cannot keep Stripe's deliveries out.
        for forged in ({"secret": "whsec_forged"}, {"header": "t=1,v1=" + "0" * 64}, {"at": int(time.time()) - 3600}):
            status, answer = await hands.deliver(event, **forged)  # type: ignore[arg-type]
            assert status == 503, (forged, status, answer)
        status, answer = await hands.deliver(event)
        assert status == 200 and answer["processed"] is True, answer
        held.release.set()
        assert await task == 200
        assert (await hands.wallet(user))["available"] == 100
    finally:
        await hands.close()
