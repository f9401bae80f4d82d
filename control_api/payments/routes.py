"""HTTP doors of payments: the wallet, the catalogue, buying packs, premium, earnings and payouts,
tips (a spend on a creator), and Stripe's webhook."""

from __future__ import annotations

import uuid

from aiohttp import http_exceptions, web
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from control_api.errors import ValidationFailed
from control_api.http import Call, Reply, Route
from control_api.ledger.types import MAX_AMOUNT, Kind
from control_api.payments import emulator, premium
from control_api.payments.models import PayoutRequest
from control_api.payments.service import PAYMENTS, Payments
from control_api.payments.webhooks import Inbox
from control_api.schema import Field, Schema

INBOX = web.AppKey("payments_inbox", Inbox)
VOUCH_MAX_BYTES = 256 * 1024
"""The largest webhook body read for a priority slot (Stripe's events are a few KiB)."""
PAYMENT_METHOD = r"pm_[A-Za-z0-9_]{1,100}"
OP_ID = r"[A-Za-z0-9_.:\-]{1,64}"


def _payments(call: Call) -> Payments:
    return call.request.config_dict[PAYMENTS]


def _key(call: Call) -> str:
    """The client's Idempotency-Key (a retry reuses Stripe's objects), else a fresh one."""
    return call.request.headers.get("Idempotency-Key") or uuid.uuid4().hex


async def _wallet(call: Call) -> Reply:
    ledger = _payments(call).ledger
    balance = await ledger.balance(call.me.user_id)
    history = await ledger.history(call.me.user_id, before=call.query.get("before"), limit=call.query.get("limit", 50))
    return Reply({"available": balance.available, "held": balance.held, "history": history})


async def _catalogue(call: Call) -> Reply:
    settings = _payments(call).settings
    base = settings.stripe_api_base.rstrip("/")
    return Reply({
        "currency": settings.currency,
        "premium": {"plan": settings.premium_plan, "price": settings.premium_price, "interval": "month"},
        "packs": [{"name": p.name, "credits": p.credits, "price": p.price} for p in settings.credit_packs],
        "stripe": {"publishable_key": settings.stripe_publishable_key,
                   "js": f"{base}/js.stripe.com/v3/" if base else "https://js.stripe.com/v3/"},
        "creator_share_percent": settings.creator_share_percent,
    })


async def _pack_intent(call: Call) -> Reply:
    started = await _payments(call).start_purchase(call.me.user_id, call.params["pack"], key=_key(call),
                                                   payment_method=call.body.get("payment_method"))
    intent = started.intent
    return Reply({"intent_id": intent.id, "status": intent.status, "client_secret": intent.client_secret,
                  "amount": intent.amount, "currency": intent.currency, "credits": started.pack.credits,
                  "credited": started.credited or intent.status == "succeeded",
                  "next": "authenticate" if intent.status == "requires_action" else
                          "confirm" if intent.status in ("requires_payment_method", "requires_confirmation") else None},
                 201)


async def _premium_status(call: Call) -> Reply:
    return Reply(await premium.status(_payments(call), call.me.user_id))


async def _subscribe(call: Call) -> Reply:
    payments = _payments(call)
    await premium.subscribe(payments, call.me.user_id, payment_method=call.body.get("payment_method"),
                            key=_key(call))
    return Reply(await premium.status(payments, call.me.user_id), 201)


async def _unsubscribe(call: Call) -> Reply:
    payments = _payments(call)
    await premium.cancel(payments, call.me.user_id)
    return Reply(await premium.status(payments, call.me.user_id))


async def _portal(call: Call) -> Reply:
    return Reply({"url": await premium.portal(_payments(call), call.me.user_id)})


async def _checkout(call: Call) -> Reply:
    return Reply({"url": await premium.checkout(_payments(call), call.me.user_id, what=call.body["item"],
                                                key=_key(call))}, 201)


async def _earnings(call: Call) -> Reply:
    ledger = _payments(call).ledger
    balance = await ledger.balance(call.me.user_id, Kind.EARNINGS)
    history = await ledger.history(call.me.user_id, Kind.EARNINGS, before=call.query.get("before"),
                                   limit=call.query.get("limit", 50))
    return Reply({"available": balance.available, "share_percent": ledger.share_percent, "history": history})


async def _payout(call: Call) -> Reply:
    payments, me = _payments(call), call.me.user_id
    credits = call.body["credits"]
    if credits < payments.settings.payout_minimum:
        raise ValidationFailed({"credits": f"must be at least {payments.settings.payout_minimum}"})
    op_id = f"payout:{me}:{_key(call)}"
    await payments.ledger.payout(op_id, me, credits, meta={"status": "requested"})
    async with payments.sessions() as session, session.begin():
        await session.execute(insert(PayoutRequest).values(account_id=me, credits=credits, transfer_id=op_id)
                              .on_conflict_do_nothing())
        request = await session.scalar(select(PayoutRequest.id).where(PayoutRequest.transfer_id == op_id))
    return Reply({"id": request, "credits": credits, "status": "requested",
                  "note": "recorded; paid out through Stripe Connect where available (docs/payments.md)"}, 201)


async def _tip(call: Call) -> Reply:
    me, other = call.me.user_id, call.params["user_id"]
    if other == me:
        raise ValidationFailed({"user_id": "must be another user"})
    spend = await _payments(call).spend_on(f"tip:{me}:{call.body['id']}", me, other, call.body["amount"], kind="tip")
    return Reply({"id": call.body["id"], "amount": spend.amount, "creator_amount": spend.creator_amount,
                  "replayed": spend.replayed}, 200 if spend.replayed else 201)


async def _webhook(call: Call) -> Reply:
    body = await call.request.read()
    answer = await call.request.config_dict[INBOX].receive(body, call.request.headers.get("Stripe-Signature"))
    return Reply(answer)


async def _signed(request: web.Request) -> bool:
    """Only Stripe's own deliveries take the webhook's priority slots (control_api/admission.py). A body
    that cannot be read, or is far larger than any event, takes none: the handler then answers it."""
    if request.content_length is None or request.content_length > VOUCH_MAX_BYTES:
        return False
    try:
        body = await request.read()  # kept by aiohttp: the handler reads the same bytes
    except (web.HTTPException, ConnectionError, http_exceptions.HttpProcessingError):
        return False
    return request.config_dict[INBOX].signed(body, request.headers.get("Stripe-Signature"))


def routes() -> list[Route]:
    page = Schema({"before": Field("integer", required=False, minimum=1, maximum=2**63 - 1,
                                   description="cursor: a history entry's seq"),
                   "limit": Field("integer", required=False, minimum=1, maximum=200)})
    card = Schema({"payment_method": Field("string", required=False, pattern=PAYMENT_METHOD,
                                           description="A card from Stripe.js; absent: confirm it on the page")})
    return [
        *emulator.routes(),  # the Stripe.js stand-in's server half; 404 unless --stripe-emulator
        Route("GET", "/wallet", _wallet, "My credits: available, held, and history (newest first)", "payments",
              query=page),
        Route("GET", "/payments/catalogue", _catalogue, "Credit packs, premium's price, the Stripe.js key",
              "payments", auth=False),
        Route("POST", "/payments/credit-packs/{pack}/intent", _pack_intent,
              "Buy a credit pack: a PaymentIntent (its client_secret for Stripe.js)", "payments",
              params=Schema({"pack": Field("string", pattern=r"[A-Za-z_][A-Za-z0-9_]{0,31}")}), body=card,
              ok=201, idempotent=True),
        Route("GET", "/payments/premium", _premium_status, "My premium status and subscription", "payments"),
        Route("POST", "/payments/premium", _subscribe, "Subscribe to premium (monthly)", "payments", body=card,
              ok=201, idempotent=True),
        Route("DELETE", "/payments/premium", _unsubscribe, "Cancel premium now", "payments"),
        Route("POST", "/payments/premium/portal", _portal, "A Stripe customer-portal link to manage premium",
              "payments"),
        Route("POST", "/payments/checkout", _checkout, "A hosted Stripe Checkout page for premium or a pack",
              "payments", body=Schema({"item": Field("string", pattern=r"[A-Za-z_][A-Za-z0-9_]{0,31}",
                                                     description="premium, or a pack name")}),
              ok=201, idempotent=True),
        Route("GET", "/payments/earnings", _earnings, "My earnings as a creator, and their history", "payments",
              query=page),
        Route("POST", "/payments/payouts", _payout, "Ask for my earnings to be paid out (recorded)", "payments",
              body=Schema({"credits": Field("integer", minimum=1, maximum=MAX_AMOUNT)}), ok=201, idempotent=True),
        Route("POST", "/users/{user_id}/tips", _tip, "Tip a creator: credits from my wallet, their share to them",
              "payments", params=Schema({"user_id": Field("uuid")}),
              body=Schema({"id": Field("string", pattern=OP_ID, description="my idempotency key for this tip"),
                           "amount": Field("integer", minimum=1, maximum=MAX_AMOUNT)}), ok=201, repeat=200),
        Route("POST", "/payments/webhook", _webhook, "Stripe's webhook (signed events)", "payments", auth=False,
              priority=True, vouch=_signed),
    ]

