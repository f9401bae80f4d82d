"""Credit packs through real localstripe: a test card, 3-D Secure, declines, refunds."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from control_api.ledger.audit import check_ledger
from control_api.payments.models import StripeEvent
from tests.control_api.payments.conftest import Stripe


async def _event_processed(stripe: Stripe, kind: str, intent_id: str) -> bool:
    async with stripe.payments.sessions() as session:
        rows = (await session.scalars(select(StripeEvent).where(StripeEvent.type == kind))).all()
    return any(r.payload["data"]["object"]["id"] == intent_id and r.processed_at for r in rows)


async def test_buy_a_pack_with_a_test_card(stripe_api: Stripe) -> None:
    user = await stripe_api.api.user()
    status, catalogue = await stripe_api.api.call("GET", "/payments/catalogue")
    assert status == 200 and len(catalogue["packs"]) >= 3 and catalogue["premium"]["price"] > 0
    card = await stripe_api.card("ok")
    status, body = await stripe_api.api.call("POST", "/payments/credit-packs/small/intent", user,
                                             json={"payment_method": card})
    assert status == 201, body
    assert (body["status"], body["credited"], body["credits"]) == ("succeeded", True, 100)
    assert (await stripe_api.wallet(user))["available"] == 100
    # localstripe's own signed webhook arrives a second later: it changes nothing.
    await stripe_api.until(lambda: _event_processed(stripe_api, "payment_intent.succeeded", body["intent_id"]))
    wallet = await stripe_api.wallet(user)
    assert wallet["available"] == 100 and [h["kind"] for h in wallet["history"]] == ["purchase"]
    status, _ = await stripe_api.api.call("POST", "/payments/credit-packs/nope/intent", user, json={})
    assert status == 404


async def test_three_d_secure_credits_after_authentication(stripe_api: Stripe) -> None:
    user = await stripe_api.api.user()
    card = await stripe_api.card("3ds")
    status, body = await stripe_api.api.call("POST", "/payments/credit-packs/medium/intent", user,
                                             json={"payment_method": card})
    assert status == 201 and body["status"] == "requires_action" and body["next"] == "authenticate", body
    assert (await stripe_api.wallet(user))["available"] == 0
    await stripe_api.authenticate(body["intent_id"], body["client_secret"], success=True)
    async def credited() -> bool:
        return (await stripe_api.wallet(user))["available"] == 250
    await stripe_api.until(credited)  # through the signed payment_intent.succeeded webhook

    # A failed authentication credits nothing.
    card = await stripe_api.card("3ds")
    status, body = await stripe_api.api.call("POST", "/payments/credit-packs/small/intent", user,
                                             json={"payment_method": card})
    await stripe_api.authenticate(body["intent_id"], body["client_secret"], success=False)
    status, again = await stripe_api.api.call("POST", "/payments/credit-packs/small/intent", user, json={})
    assert status == 201 and again["next"] == "confirm"  # no card: the page confirms with Stripe.js
    assert (await stripe_api.wallet(user))["available"] == 250


async def test_declined_cards(stripe_api: Stripe) -> None:
    user = await stripe_api.api.user()
    for kind in ("declined", "declined_on_attach"):
        card = await stripe_api.card(kind)
        status, body = await stripe_api.api.call("POST", "/payments/credit-packs/small/intent", user,
                                                 json={"payment_method": card})
        assert status == 402 and "declined" in body["detail"], body
    assert (await stripe_api.wallet(user))["available"] == 0


async def test_a_retry_with_the_same_key_buys_once(stripe_api: Stripe) -> None:
    user = await stripe_api.api.user()
    card = await stripe_api.card("ok")
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = await stripe_api.api.call("POST", "/payments/credit-packs/small/intent", user,
                                      json={"payment_method": card}, headers=key)
    second = await stripe_api.api.call("POST", "/payments/credit-packs/small/intent", user,
                                       json={"payment_method": card}, headers=key)
    assert first == second and first[0] == 201
    assert (await stripe_api.wallet(user))["available"] == 100


async def test_a_refund_reverses_the_credits(stripe_api: Stripe) -> None:
    fan, creator = await stripe_api.api.user(), await stripe_api.api.user()
    card = await stripe_api.card("ok")
    _, body = await stripe_api.api.call("POST", "/payments/credit-packs/small/intent", fan,
                                        json={"payment_method": card})
    intent = body["intent_id"]
    status, tip = await stripe_api.api.call("POST", f"/users/{creator.id}/tips", fan, json={"id": "t1", "amount": 30})
    assert status == 201 and tip["creator_amount"] == 21, tip
    # The refund is made in Stripe (the dashboard); localstripe sends no event for it, Stripe would.
    refund = await stripe_api.stripe("POST", "/v1/refunds", payment_intent=intent)
    event = {"id": f"evt_{uuid.uuid4().hex[:14]}", "type": "charge.refunded", "created": 1,
             "data": {"object": {"id": "ch_x", "object": "charge", "payment_intent": intent}}}
    for _ in range(2):
        status, answer = await stripe_api.deliver(event)
        assert status == 200 and answer["processed"] is True, answer
    wallet = await stripe_api.wallet(fan)
    assert wallet["available"] == 0 and wallet["history"][0]["kind"] == "refund"  # what was left: 70
    assert wallet["history"][0]["amount"] == -70
    report = await check_ledger(stripe_api.payments.ledger.engine)
    assert report.ok, report
    status, earnings = await stripe_api.api.call("GET", "/payments/earnings", creator)
    assert earnings["available"] == 21  # the creator keeps the share; the platform's refunds account covers it
    assert refund["amount"] == 499


async def test_tips_through_http(stripe_api: Stripe) -> None:
    api = stripe_api.api
    fan, creator, blocker = await api.user(), await api.user(), await api.user()
    status, _ = await api.call("POST", "/payments/credit-packs/small/intent", fan,
                               json={"payment_method": await stripe_api.card("ok")})
    assert status == 201
    status, tip = await api.call("POST", f"/users/{creator.id}/tips", fan, json={"id": "a", "amount": 100})
    assert status == 201 and (tip["creator_amount"], tip["replayed"]) == (70, False)
    status, tip = await api.call("POST", f"/users/{creator.id}/tips", fan, json={"id": "a", "amount": 100})
    assert status == 200 and tip["replayed"] is True  # the same tip id charges once
    assert (await api.call("POST", f"/users/{creator.id}/tips", fan, json={"id": "b", "amount": 1}))[0] == 402
    assert (await api.call("POST", f"/users/{fan.id}/tips", fan, json={"id": "c", "amount": 1}))[0] == 422
    assert (await api.call("POST", f"/users/{creator.id}/tips", fan, json={"id": "d", "amount": -1}))[0] == 422
    assert (await api.call("POST", f"/users/{creator.id}/tips", fan, json={"id": "e", "amount": 1.5}))[0] == 422
    assert (await api.call("POST", f"/users/{blocker.id}/block", blocker))[0] in (404, 422)  # not oneself
    assert (await api.call("POST", f"/users/{fan.id}/block", blocker))[0] in (200, 201, 204)
    assert (await api.call("POST", f"/users/{blocker.id}/tips", fan, json={"id": "f", "amount": 1}))[0] == 404
    status, earnings = await api.call("GET", "/payments/earnings", creator)
    assert earnings["available"] == 70 and earnings["history"][0]["kind"] == "tip"
    status, payout = await api.call("POST", "/payments/payouts", creator, json={"credits": 70})
    assert status == 422 and "credits" in payout["errors"][0]["field"]  # under payments.payout_minimum
