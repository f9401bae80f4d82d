"""Durable records of the Stripe side: customers, the webhook inbox, purchases, refunds,
subscriptions and payout requests. The credits themselves live in the ledger."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from control_api.tables import Base


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=text("now()"))


class StripeCustomer(Base):
    """The Stripe customer of an account, made on its first purchase."""

    __tablename__ = "stripe_customers"

    account_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("accounts.id"), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = _now()


class StripeEvent(Base):
    """The webhook inbox: every verified event, stored by id before it acts (a replay finds it)."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    created: Mapped[int] = mapped_column(BigInteger)
    """Stripe's ``created`` (unix seconds)."""
    payload: Mapped[dict] = mapped_column(JSONB)  # type: ignore[type-arg]
    received_at: Mapped[datetime] = _now()
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    error: Mapped[str] = mapped_column(Text, server_default=text("''"))


class Purchase(Base):
    """A credit pack bought through a PaymentIntent; credited once, when Stripe says it succeeded."""

    __tablename__ = "purchases"

    intent_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("accounts.id"), index=True)
    pack: Mapped[str] = mapped_column(String(32))
    credits: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)
    """Price paid, in the currency's minor units."""
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(32))
    """The PaymentIntent's status as last seen (``succeeded`` once credited)."""
    refunded: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    """Minor units refunded or disputed so far."""
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class StripeRefund(Base):
    """A refund or a lost dispute of a purchase, and the credits its reversal took back."""

    __tablename__ = "stripe_refunds"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    """Stripe's refund (``re_``) or dispute (``dp_``) id."""
    intent_id: Mapped[str] = mapped_column(String(64), ForeignKey("purchases.intent_id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    credits: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = _now()


class Subscription(Base):
    """A premium subscription as Stripe last told us (the newest fetched state wins)."""

    __tablename__ = "subscriptions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("accounts.id"), index=True)
    status: Mapped[str] = mapped_column(String(32))
    plan: Mapped[str] = mapped_column(String(64))
    current_period_end: Mapped[int | None] = mapped_column(BigInteger)
    cancel_at_period_end: Mapped[bool] = mapped_column(server_default=text("false"))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class PayoutRequest(Base):
    """A creator asking for their earnings; recorded (Stripe Connect pays out where available)."""

    __tablename__ = "payout_requests"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    account_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("accounts.id"), index=True)
    credits: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), server_default=text("'requested'"))
    transfer_id: Mapped[str] = mapped_column(String(160), unique=True)
    created_at: Mapped[datetime] = _now()
