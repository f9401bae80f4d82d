"""Premium through Stripe Subscriptions: subscribe, cancel, the customer portal, Checkout.

The account's ``premium`` flag is only ever written by :meth:`Payments.mirror` from a subscription
fetched from Stripe, so the flag follows Stripe whatever order the webhooks come in."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from control_api.errors import Conflict, NotFound
from control_api.payments.models import Subscription
from control_api.payments.service import Payments
from control_api.payments.types import PREMIUM_STATUSES, Sub

CANCELABLE = PREMIUM_STATUSES | {"incomplete", "unpaid", "paused"}


async def _subscriptions(payments: Payments, user: uuid.UUID, statuses: frozenset[str]) -> list[str]:
    async with payments.sessions() as session:
        return list((await session.scalars(select(Subscription.id).where(
            Subscription.account_id == user, Subscription.status.in_(statuses)))).all())


async def subscribe(payments: Payments, user: uuid.UUID, *, payment_method: str | None, key: str) -> Sub:
    """A monthly premium subscription charged to the card (saved as the customer's default)."""
    if await _subscriptions(payments, user, PREMIUM_STATUSES):
        raise Conflict("premium is active already")
    gateway = payments.gateway
    customer = await payments.customer_for(user)
    if payment_method:
        await gateway.attach_card(customer, payment_method)
    sub = await gateway.create_subscription(customer=customer, plan=payments.settings.premium_plan,
                                            metadata={"user_id": str(user)}, idempotency_key=f"premium:{user}:{key}")
    await payments.mirror(sub)
    return sub


async def cancel(payments: Payments, user: uuid.UUID) -> list[Sub]:
    """Cancels the user's live subscriptions now (premium ends at once)."""
    ids = await _subscriptions(payments, user, frozenset(CANCELABLE))
    if not ids:
        raise NotFound("no premium subscription to cancel")
    out = []
    for sub_id in ids:
        sub = await payments.gateway.cancel_subscription(sub_id)
        await payments.mirror(sub)
        out.append(sub)
    return out


async def status(payments: Payments, user: uuid.UUID) -> dict[str, object]:
    async with payments.sessions() as session:
        subs = (await session.scalars(select(Subscription).where(Subscription.account_id == user)
                                      .order_by(Subscription.created_at.desc()))).all()
    live = [s for s in subs if s.status in PREMIUM_STATUSES]
    current = live[0] if live else (subs[0] if subs else None)
    return {"premium": bool(live), "subscription": None if current is None else {
        "id": current.id, "status": current.status, "current_period_end": current.current_period_end,
        "cancel_at_period_end": current.cancel_at_period_end}}


async def portal(payments: Payments, user: uuid.UUID) -> str:
    customer = await payments.customer_for(user)
    return await payments.gateway.portal_url(customer, payments.settings.portal_return_url)


async def checkout(payments: Payments, user: uuid.UUID, *, what: str, key: str) -> str:
    """A hosted Checkout page for ``premium`` or a pack name (production; localstripe has none)."""
    customer = await payments.customer_for(user)
    settings = payments.settings
    if what == "premium":
        return await payments.gateway.checkout_url(
            customer=customer, mode="subscription", price=settings.premium_plan, amount=None,
            currency=settings.currency, name="Premium", metadata={"user_id": str(user)},
            success_url=settings.portal_return_url, idempotency_key=f"checkout:{user}:{key}")
    pack = payments.pack(what)
    return await payments.gateway.checkout_url(
        customer=customer, mode="payment", price=None, amount=pack.price, currency=settings.currency,
        name=f"{pack.credits} credits", metadata={"user_id": str(user), "pack": pack.name,
                                                   "credits": str(pack.credits)},
        success_url=settings.portal_return_url, idempotency_key=f"checkout:{user}:{key}")
