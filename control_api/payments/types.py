"""The payment gateway boundary: what the API asks of Stripe, in our own value objects, so
nothing past this line touches a Stripe object (tests fake it here only where localstripe lacks a
feature: Checkout Sessions and Prices)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from control_api.errors import PaymentRequired, ServiceUnavailable

PREMIUM_STATUSES = frozenset({"active", "trialing", "past_due"})
"""Subscription statuses that grant premium (past_due: while Stripe retries the card)."""
SUBSCRIPTION_STATUSES = frozenset({"incomplete", "incomplete_expired", "trialing", "active", "past_due", "canceled",
                                   "unpaid", "paused"})


class CardDeclined(PaymentRequired):
    """The bank refused the card (the message is Stripe's, safe to show)."""


class GatewayDown(ServiceUnavailable):
    """Stripe did not answer in time or failed; the same idempotency key makes a retry safe."""


class GatewayRefused(ServiceUnavailable):
    """Stripe refused the request (unknown object, a feature this account or emulator lacks)."""


@dataclass(frozen=True)
class Intent:
    """A PaymentIntent as we need it."""

    id: str
    status: str
    """``requires_payment_method``, ``requires_confirmation``, ``requires_action``, ``processing``,
    ``requires_capture``, ``succeeded`` or ``canceled``."""
    amount: int
    currency: str
    client_secret: str
    customer: str | None
    metadata: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None
    """Why the last attempt failed (declined, authentication failed)."""


@dataclass(frozen=True)
class Refund:
    id: str
    intent_id: str | None
    amount: int
    status: str


@dataclass(frozen=True)
class Sub:
    """A Subscription as we need it."""

    id: str
    customer: str
    status: str
    plan: str
    current_period_end: int | None
    cancel_at_period_end: bool
    metadata: Mapping[str, str] = field(default_factory=dict)


class Gateway(Protocol):
    """Stripe, as the API uses it. Every call has a timeout and raises GatewayDown when Stripe is
    unreachable or failing, CardDeclined when a card is refused."""

    async def ensure_plan(self, plan_id: str, amount: int, currency: str, name: str) -> None:
        """The monthly plan (a price) exists in Stripe, made now if missing."""

    async def create_customer(self, user_id: str, email: str, *, idempotency_key: str) -> str:
        """A new customer's id."""

    async def attach_card(self, customer: str, payment_method: str) -> None:
        """Saves a card on the customer as its default (subscriptions charge it)."""

    async def create_intent(self, *, customer: str, amount: int, currency: str, metadata: Mapping[str, str],
                            payment_method: str | None, idempotency_key: str) -> Intent:
        """A PaymentIntent; with ``payment_method`` it is confirmed at once (may need 3-D Secure)."""

    async def get_intent(self, intent_id: str) -> Intent: ...

    async def refunds_of(self, intent_id: str) -> list[Refund]:
        """Every refund of the intent's charge."""

    async def refund(self, intent_id: str, amount: int | None, *, idempotency_key: str) -> Refund: ...

    async def create_subscription(self, *, customer: str, plan: str, metadata: Mapping[str, str],
                                  idempotency_key: str) -> Sub: ...

    async def get_subscription(self, sub_id: str) -> Sub: ...

    async def cancel_subscription(self, sub_id: str) -> Sub: ...

    async def portal_url(self, customer: str, return_url: str) -> str:
        """A customer-portal session where the user manages premium."""

    async def checkout_url(self, *, customer: str, mode: str, price: str | None, amount: int | None,
                           currency: str, name: str, metadata: Mapping[str, str], success_url: str,
                           idempotency_key: str) -> str:
        """A hosted Checkout page (``mode``: ``payment`` for a pack, ``subscription`` for premium)."""

    async def paid_intents(self, since: int) -> list[Intent]:
        """Succeeded PaymentIntents created since ``since`` (unix seconds), for reconciliation."""

    async def close(self) -> None: ...
