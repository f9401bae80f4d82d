"""The ledger's vocabulary: account kinds, transfer ids, and what its operations answer."""

from __future__ import annotations

import enum
import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from control_api.errors import Conflict, NotFound, PaymentRequired, ValidationFailed

MAX_AMOUNT = 10**12
"""Largest amount of one operation (credits): far above any pack, far below bigint."""
TRANSFER_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,120}")
"""Operation ids: printable, no ``#`` or ``/`` (the ledger derives part ids with them)."""


class Kind(enum.StrEnum):
    """Account kinds. Per user: WALLET (credits to spend) and EARNINGS (a creator's share). Platform
    (no owner, sharded): REVENUE (the platform's share), STRIPE (clearing: credits sold minus refunded),
    REFUNDS (credits the platform gave back that a user had already spent), PAYOUTS (earnings paid out)."""

    WALLET = "wallet"
    EARNINGS = "earnings"
    REVENUE = "revenue"
    STRIPE = "stripe"
    REFUNDS = "refunds"
    PAYOUTS = "payouts"

    @property
    def per_user(self) -> bool:
        return self in (Kind.WALLET, Kind.EARNINGS)


class InsufficientCredits(PaymentRequired):
    """The debited account does not hold enough (the database refused the overdraft)."""


class UnknownTransfer(NotFound):
    """No operation or hold with that id."""


class CreatorUnavailable(NotFound):
    """The creator's account is deleted or missing, or a block stands between payer and creator."""


class TransferConflict(Conflict):
    """The id was used for a different operation, or the hold is already posted, voided or expired."""


def check_amount(amount: object, name: str = "amount") -> int:
    """An amount of credits: a positive integer no larger than :data:`MAX_AMOUNT`."""
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= MAX_AMOUNT:
        raise ValidationFailed({name: f"must be an integer from 1 to {MAX_AMOUNT}"})
    return amount


def check_id(op_id: object, name: str = "id") -> str:
    if not isinstance(op_id, str) or not TRANSFER_ID.fullmatch(op_id):
        raise ValidationFailed({name: "must be 1-120 characters of A-Z a-z 0-9 _ . : -"})
    return op_id


@dataclass(frozen=True)
class Balance:
    """A user's wallet as the caller may spend it."""

    available: int
    """Credits that can be spent now (posted credits minus posted and held debits)."""
    held: int
    """Credits held by pending transfers (a paid call's next minute)."""


@dataclass(frozen=True)
class Transfer:
    """One stored transfer, as history shows it."""

    id: str
    batch: str
    debit_account_id: int
    credit_account_id: int
    amount: int
    phase: str
    kind: str
    pending_id: str | None
    expires_at: datetime | None
    meta: dict  # type: ignore[type-arg]
    created_at: datetime


@dataclass(frozen=True)
class Spend:
    """The outcome of one spend or hold operation."""

    id: str
    """The caller's operation id."""
    payer: uuid.UUID
    creator: uuid.UUID | None
    """Who earns the share; None: all goes to platform revenue."""
    amount: int
    """Credits taken from the wallet (held, for a pending one)."""
    creator_amount: int
    platform_amount: int
    state: str
    """``posted``, ``pending``, ``voided`` or ``expired``."""
    replayed: bool = False
    """True when the operation existed already (nothing new happened)."""


@dataclass(frozen=True)
class CheckReport:
    """``switchboard ledger check``: empty lists mean the books balance."""

    accounts: int
    transfers: int
    debits: int
    credits: int
    mismatched: list[str]
    """Accounts whose stored balance differs from the sum of their transfers (with both values)."""
    negative: list[str]
    """Overdraft-protected accounts below zero (the database should make this impossible)."""

    @property
    def ok(self) -> bool:
        return self.debits == self.credits and not self.mismatched and not self.negative
