"""The ledger's two tables (TigerBeetle's model on Postgres): accounts with running balances, and
immutable transfers. The constraints that keep money safe live in the database (migration 0005):
a balance column never below zero, ``no_overdraft`` accounts never spend more than they hold, a
transfer never changes once written (a trigger refuses UPDATE and DELETE), each hold resolved once."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, DateTime, ForeignKey, Index, SmallInteger, String, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from control_api.tables import Base


class LedgerAccount(Base):
    """One account: a user's credits wallet or earnings, or a shard of a platform account."""

    __tablename__ = "ledger_accounts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    owner_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), ForeignKey("accounts.id"))
    """The user (wallet, earnings); None for platform accounts."""
    kind: Mapped[str] = mapped_column(String(16))
    """``wallet``, ``earnings``, ``revenue``, ``stripe``, ``refunds``, ``payouts`` (ledger.types.Kind)."""
    shard: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))
    """Platform accounts are split in shards so concurrent spends do not queue on one row."""
    no_overdraft: Mapped[bool] = mapped_column(Boolean)
    """Debits (posted and pending) may never exceed posted credits (TigerBeetle's
    debits_must_not_exceed_credits): wallets and earnings."""
    debits_posted: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    credits_posted: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    debits_pending: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    credits_pending: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=text("now()"))

    __table_args__ = (
        CheckConstraint("debits_posted >= 0 AND credits_posted >= 0 AND debits_pending >= 0 AND credits_pending >= 0",
                        name="ledger_balances_not_negative"),
        CheckConstraint("NOT no_overdraft OR debits_posted + debits_pending <= credits_posted",
                        name="ledger_no_overdraft"),
        Index("ledger_accounts_owner", "owner_id", "kind", unique=True, postgresql_where=text("owner_id IS NOT NULL")),
        Index("ledger_accounts_platform", "kind", "shard", unique=True, postgresql_where=text("owner_id IS NULL")),
    )


class LedgerTransfer(Base):
    """One immutable movement of ``amount`` credits from ``debit`` to ``credit``. ``id`` is the
    caller's idempotency key; ``batch`` groups the transfers of one operation (a spend's creator and
    platform parts), which are written together or not at all."""

    __tablename__ = "ledger_transfers"

    id: Mapped[str] = mapped_column(String(160), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, server_default=text("nextval('ledger_transfers_seq')"), unique=True)
    batch: Mapped[str] = mapped_column(String(128), index=True)
    debit_account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("ledger_accounts.id"), index=True)
    credit_account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("ledger_accounts.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    phase: Mapped[str] = mapped_column(String(8))
    """``single`` (posted at once), ``pending`` (a hold), ``post`` or ``void`` (resolving ``pending_id``)."""
    kind: Mapped[str] = mapped_column(String(32))
    """What it is for: ``purchase``, ``spend``, ``refund``, ``dispute``, ``payout``, ``expire``..."""
    pending_id: Mapped[str | None] = mapped_column(String(160), ForeignKey("ledger_transfers.id"), unique=True)
    """For ``post``/``void``: the hold it resolves (unique: a hold is resolved once)."""
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """For ``pending``: when the hold lapses and its credits return by themselves."""
    meta: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))  # type: ignore[type-arg]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=text("now()"))

    __table_args__ = (
        CheckConstraint("amount > 0", name="ledger_amount_positive"),
        CheckConstraint("debit_account_id <> credit_account_id", name="ledger_distinct_accounts"),
        CheckConstraint("phase IN ('single', 'pending', 'post', 'void')", name="ledger_phase"),
        CheckConstraint("(phase IN ('post', 'void')) = (pending_id IS NOT NULL)", name="ledger_resolves_a_hold"),
        CheckConstraint("(phase = 'pending') = (expires_at IS NOT NULL)", name="ledger_hold_expires"),
        Index("ledger_transfers_holds", "expires_at", postgresql_where=text("phase = 'pending'")),
    )
