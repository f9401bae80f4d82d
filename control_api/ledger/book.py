"""The ledger's operations. Each writes one batch of transfers and moves the balances they touch in
one database statement (``ledger_apply_many``, migrations 0005 and 0011, through the group-commit
:class:`~control_api.ledger.writer.Writer`), so an operation happens whole or not at all, happens
once per id, and can never take a wallet below zero: the database refuses it.

Operation ids are the caller's idempotency keys (``purchase:pi_123``, ``ppv:<attachment>:<buyer>``):
repeating an operation answers what the first one did (``replayed=True``) and moves nothing.
"""

from __future__ import annotations

import uuid
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from control_api.ledger.journal import Batch, Journal
from control_api.ledger.types import (
    Balance,
    CreatorUnavailable,
    InsufficientCredits,
    Kind,
    Spend,
    Transfer,
    TransferConflict,
    UnknownTransfer,
    check_amount,
    check_id,
)
from control_api.ledger.writer import Outcome, Writer, columns


class Ledger:
    """Accounts and transfers on Postgres. One per API process; account ids are cached."""

    def __init__(self, engine: AsyncEngine, *, creator_share_percent: int, shards: int = 8) -> None:
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.share_percent = creator_share_percent
        self._shards = shards
        self._ids: dict[tuple[uuid.UUID | None, Kind, int], int] = {}
        self.writer = Writer(self._engine)
        """Every write goes through it (group commit)."""
        self.journal = Journal(self._engine)
        """Reads of the transfers (an operation's parts, a hold's state)."""

    async def close(self) -> None:
        """Waits for the writes under way (bounded); the engine is the caller's to dispose."""
        await self.writer.close()

    @property
    def engine(self) -> AsyncEngine:
        """The ledger's autocommit engine: one statement, one round trip (reads on hot paths use it too)."""
        return self._engine

    # --- accounts ------------------------------------------------------------------------------

    async def account(self, owner: uuid.UUID | None, kind: Kind, shard: int = 0) -> int:
        """The id of an account, made on first use (a user's wallet and earnings, platform shards).
        CreatorUnavailable when ``owner`` has no row in ``accounts``."""
        if kind.per_user != (owner is not None):
            raise ValueError(f"{kind} accounts {'need' if kind.per_user else 'have no'} owner")
        key = (owner, kind, shard if owner is None else 0)
        found = self._ids.get(key)
        if found is not None:
            return found
        async with self._engine.connect() as conn:
            try:
                await conn.execute(text(
                    "INSERT INTO ledger_accounts (owner_id, kind, shard, no_overdraft) VALUES (:o, :k, :s, :n) "
                    "ON CONFLICT DO NOTHING"), {"o": owner, "k": kind.value, "s": key[2], "n": kind.per_user})
            except IntegrityError:  # no such user (accounts.id)
                raise CreatorUnavailable("no such user") from None
            found = await conn.scalar(text(
                "SELECT id FROM ledger_accounts WHERE kind = :k AND shard = :s AND "
                + ("owner_id = :o" if owner else "owner_id IS NULL")), {"o": owner, "k": kind.value, "s": key[2]})
        assert found is not None
        self._ids[key] = int(found)
        return int(found)

    async def _platform(self, kind: Kind, op_id: str) -> int:
        return await self.account(None, kind, zlib.crc32(op_id.encode()) % self._shards)

    async def balance(self, user: uuid.UUID, kind: Kind = Kind.WALLET) -> Balance:
        """Spendable and held credits; lapsed holds on the wallet are voided first (void on read)."""
        account = await self.account(user, kind)
        await self.expire_holds(account=account)
        async with self._engine.connect() as conn:
            row = (await conn.execute(text(
                "SELECT credits_posted - debits_posted - debits_pending, debits_pending FROM ledger_accounts "
                "WHERE id = :a"), {"a": account})).one()
        return Balance(available=int(row[0]), held=int(row[1]))

    # --- the one write path ----------------------------------------------------------------------

    async def _write(self, batch: Batch, *, payer: uuid.UUID | None = None,
                     creator: uuid.UUID | None = None) -> Outcome:
        """Applied or replayed (anything else raises). ``creator``: refuse unless that account is
        live and no block stands between it and ``payer`` (checked in the same statement)."""
        op = batch.op()
        if creator is not None:
            op["payer"], op["creator"] = payer, creator
        done = await self.writer.submit(op)
        if done.outcome in ("applied", "replayed"):
            return done
        if done.outcome == "short":
            raise InsufficientCredits("not enough credits")
        if done.outcome == "conflict":
            raise TransferConflict(f"operation {batch.batch!r} conflicts with one already written")
        if done.outcome == "hidden":
            raise CreatorUnavailable("no such user")
        raise RuntimeError(f"the ledger refused operation {batch.batch!r}: {done.detail}")

    async def _apply(self, batch: Batch) -> bool:
        """True when written now; False when the operation existed already."""
        return (await self._write(batch)).outcome == "applied"

    # --- single-phase operations ---------------------------------------------------------------------

    async def deposit(self, op_id: str, user: uuid.UUID, credits: int, *, kind: str = "purchase",
                      meta: dict[str, Any] | None = None) -> bool:
        """Credits bought with money enter the wallet from Stripe clearing. False: done before."""
        check_id(op_id)
        check_amount(credits, "credits")
        batch = Batch(op_id, kind, meta or {})
        batch.add(op_id, await self._platform(Kind.STRIPE, op_id), await self.account(user, Kind.WALLET), credits)
        return await self._apply(batch)

    async def deposit_arguments(self, op_id: str, user: uuid.UUID, credits: int, *, kind: str = "purchase",
                                meta: dict[str, Any] | None = None) -> list[list[Any]]:
        """:meth:`deposit` as the 19 arguments of ``ledger_apply_many`` (one operation), for a caller
        that writes it inside a statement of its own with rows that must commit with it (a Stripe
        payment's webhook: docs/payments.md). That caller reads the outcome (``applied`` or
        ``replayed``; anything else must abort its statement) and the writer is not involved."""
        check_id(op_id)
        check_amount(credits, "credits")
        batch = Batch(op_id, kind, meta or {})
        batch.add(op_id, await self._platform(Kind.STRIPE, op_id), await self.account(user, Kind.WALLET), credits)
        return columns([batch.op()])

    def split(self, amount: int, creator: uuid.UUID | None, share_percent: int | None = None) -> tuple[int, int]:
        """(creator part, platform part) of ``amount``: the creator's share rounded down."""
        share = self.share_percent if share_percent is None else share_percent
        creator_part = amount * share // 100 if creator is not None else 0
        return creator_part, amount - creator_part

    async def _spend_batch(self, op_id: str, payer: uuid.UUID, creator: uuid.UUID | None, amount: int, kind: str,
                           meta: dict[str, Any] | None, expires_at: datetime | None) -> tuple[Batch, int, int]:
        check_id(op_id)
        check_amount(amount)
        if creator == payer:
            raise TransferConflict("one cannot spend credits on oneself")
        creator_part, platform_part = self.split(amount, creator)
        phase = "pending" if expires_at else "single"
        batch = Batch(op_id, kind, {**(meta or {}), "payer": str(payer), "creator": str(creator) if creator else None,
                                    "share": self.share_percent})
        wallet = await self.account(payer, Kind.WALLET)
        if creator_part:
            assert creator is not None
            batch.add(f"{op_id}#c", wallet, await self.account(creator, Kind.EARNINGS), creator_part, phase,
                      expires_at=expires_at)
        if platform_part:
            batch.add(f"{op_id}#p", wallet, await self._platform(Kind.REVENUE, op_id), platform_part, phase,
                      expires_at=expires_at)
        return batch, creator_part, platform_part

    async def spend(self, op_id: str, payer: uuid.UUID, creator: uuid.UUID | None, amount: int, *,
                    kind: str = "spend", meta: dict[str, Any] | None = None, creator_visible: bool = False) -> Spend:
        """``amount`` credits leave ``payer``'s wallet at once: the creator's share to their earnings,
        the rest to platform revenue. Raises InsufficientCredits (nothing moves) when the wallet is short.
        ``creator_visible``: first refuse (CreatorUnavailable, also on a replay) unless the creator's
        account is live and neither blocked the other, in the same statement as the spend."""
        batch, creator_part, platform_part = await self._spend_batch(op_id, payer, creator, amount, kind, meta, None)
        done = await self._write(batch, payer=payer, creator=creator if creator_visible else None)
        if done.outcome == "applied":
            return Spend(op_id, payer, creator, amount, creator_part, platform_part, "posted")
        if done.phase == "single":  # a replay of a spend: the stored one must be this one
            if done.payer != str(payer) or done.amount != amount:
                raise TransferConflict(f"operation {op_id!r} exists with other accounts or amounts")
            c = done.creator_amount or 0
            return Spend(op_id, payer, creator, amount, c, amount - c, "posted", replayed=True)
        return await self.journal.replay(op_id, payer, amount)

    # --- two-phase operations --------------------------------------------------------------------

    async def hold(self, op_id: str, payer: uuid.UUID, creator: uuid.UUID | None, amount: int, *, timeout_s: float,
                   kind: str = "hold", meta: dict[str, Any] | None = None) -> Spend:
        """Reserves ``amount`` credits (pending) for at most ``timeout_s``; then :meth:`post` takes
        them (all or part), :meth:`void` returns them, and a lapsed hold returns them by itself."""
        if not 0 < timeout_s <= 7 * 86400:
            raise ValueError("a hold lasts from a moment to a week")
        expires = datetime.now(UTC) + timedelta(seconds=timeout_s)
        batch, creator_part, platform_part = await self._spend_batch(op_id, payer, creator, amount, kind, meta,
                                                                     expires)
        if await self._apply(batch):
            return Spend(op_id, payer, creator, amount, creator_part, platform_part, "pending")
        return await self.journal.replay(op_id, payer, amount)

    async def post(self, op_id: str, amount: int | None = None) -> Spend:
        """Takes a hold (``amount`` <= held; None: all of it), split as when it was held; the rest
        returns to the wallet. Posting again answers the same; a voided or lapsed hold: TransferConflict."""
        parts, state = await self.journal.hold(op_id)
        if state != "pending":
            return await self.journal.resolved(op_id, parts, state, want=("posted",))
        held = sum(p.amount for p in parts)
        take = held if amount is None else check_amount(amount)
        if take > held:
            raise TransferConflict(f"cannot post {take}: {held} are held")
        if parts[0].expires_at is not None and parts[0].expires_at <= datetime.now(UTC):
            await self.void(op_id, kind="expire")
            raise TransferConflict("the hold expired; its credits went back to the wallet")
        meta = parts[0].meta
        creator = uuid.UUID(meta["creator"]) if meta.get("creator") else None
        creator_take, platform_take = self.split(take, creator, int(meta.get("share", self.share_percent)))
        batch = Batch(op_id, "post", meta)
        for part in parts:
            part_take = creator_take if part.id.endswith("#c") else platform_take
            phase = "post" if part_take else "void"
            batch.add(f"{part.id}/done", part.debit_account_id, part.credit_account_id, part_take or part.amount,
                      phase, pending_id=part.id, pending_amount=part.amount, kind=phase)
        await self._apply(batch)
        parts, state = await self.journal.hold(op_id)
        return await self.journal.resolved(op_id, parts, state, want=("posted",))

    async def void(self, op_id: str, *, kind: str = "void") -> Spend:
        """Returns a hold's credits to the wallet (``kind="expire"`` when it lapsed). Voiding twice, or
        a hold that lapsed, answers the same (state ``voided`` or ``expired``); a posted hold: TransferConflict."""
        parts, state = await self.journal.hold(op_id)
        if state == "pending":
            batch = Batch(op_id, kind, parts[0].meta)
            for part in parts:
                batch.add(f"{part.id}/done", part.debit_account_id, part.credit_account_id, part.amount, "void",
                          pending_id=part.id, pending_amount=part.amount, kind=kind)
            try:
                await self._apply(batch)
            except TransferConflict:
                pass  # resolved meanwhile (a post, or the sweeper): say what happened below
            parts, state = await self.journal.hold(op_id)
        return await self.journal.resolved(op_id, parts, state, want=("voided", "expired"))

    async def expire_holds(self, *, account: int | None = None, limit: int = 500) -> int:
        """Voids lapsed, unresolved holds (all, or those debiting ``account``); returns how many."""
        where = " AND p.debit_account_id = :a" if account is not None else ""
        async with self._engine.connect() as conn:
            batches = (await conn.scalars(text(
                "SELECT DISTINCT p.batch FROM ledger_transfers p WHERE p.phase = 'pending' AND p.expires_at <= now()"
                + where + " AND NOT EXISTS (SELECT 1 FROM ledger_transfers r WHERE r.pending_id = p.id) LIMIT :n"),
                {"a": account, "n": limit})).all()
        for batch in batches:
            await self.void(batch, kind="expire")
        return len(batches)

    # --- reversals -----------------------------------------------------------------------------------

    async def take_back(self, op_id: str, user: uuid.UUID, credits: int, *, kind: str = "refund",
                        meta: dict[str, Any] | None = None) -> int:
        """Reverses bought credits (a refund, a lost dispute): they leave the wallet for Stripe
        clearing; what the user already spent is covered by the platform's REFUNDS account, so no
        wallet goes below zero. Returns the credits taken from the wallet (the same on a replay)."""
        check_id(op_id)
        check_amount(credits, "credits")
        for _ in range(5):
            available = (await self.balance(user)).available
            from_wallet = min(credits, max(available, 0))
            batch = Batch(op_id, kind, {**(meta or {}), "user": str(user)})
            clearing = await self._platform(Kind.STRIPE, op_id)
            if from_wallet:
                batch.add(f"{op_id}#w", await self.account(user, Kind.WALLET), clearing, from_wallet)
            if credits - from_wallet:
                batch.add(f"{op_id}#r", await self._platform(Kind.REFUNDS, op_id), clearing, credits - from_wallet)
            try:
                if await self._apply(batch):
                    return from_wallet
            except InsufficientCredits:
                continue  # spent meanwhile: look again
            rows = await self.transfers(op_id)
            return sum(r.amount for r in rows if r.id.endswith("#w"))
        raise InsufficientCredits("the wallet kept changing; retry the reversal")

    async def reverse_spend(self, op_id: str, spend_id: str, *, kind: str = "reversal",
                            meta: dict[str, Any] | None = None) -> int:
        """Gives a posted spend back to its payer (a refunded ticket): the creator's part leaves their
        earnings (what they no longer hold is covered by the platform's REFUNDS account), the
        platform's part leaves revenue. Returns the credits given back (the same on a replay)."""
        check_id(op_id)
        rows = [r for r in await self.transfers(spend_id) if r.phase in ("single", "post")]
        if not rows:
            raise UnknownTransfer(f"no posted spend {spend_id!r}")
        payer = uuid.UUID(rows[0].meta["payer"])
        wallet = await self.account(payer, Kind.WALLET)
        creator_part = sum(r.amount for r in rows if (r.pending_id and r.pending_id.endswith("#c")) or
                           r.id.endswith("#c"))
        platform_part = sum(r.amount for r in rows) - creator_part
        creator = rows[0].meta.get("creator")
        for _ in range(5):
            batch = Batch(op_id, kind, {**(meta or {}), "spend": spend_id, "payer": str(payer)})
            if creator_part:
                earnings = await self.account(uuid.UUID(creator), Kind.EARNINGS)
                have = max(0, (await self.balance(uuid.UUID(creator), Kind.EARNINGS)).available)
                if min(have, creator_part):
                    batch.add(f"{op_id}#c", earnings, wallet, min(have, creator_part))
                if creator_part - min(have, creator_part):
                    batch.add(f"{op_id}#r", await self._platform(Kind.REFUNDS, op_id), wallet,
                              creator_part - min(have, creator_part))
            if platform_part:
                batch.add(f"{op_id}#p", await self._platform(Kind.REVENUE, spend_id), wallet, platform_part)
            try:
                await self._apply(batch)
                return creator_part + platform_part
            except InsufficientCredits:
                continue  # the creator's earnings moved meanwhile: look again
        raise InsufficientCredits("the earnings kept changing; retry the reversal")

    async def payout(self, op_id: str, user: uuid.UUID, credits: int, *, meta: dict[str, Any] | None = None) -> bool:
        """Earnings leave for the PAYOUTS account (a payout request). False: done before."""
        check_id(op_id)
        check_amount(credits, "credits")
        batch = Batch(op_id, "payout", meta or {})
        batch.add(op_id, await self.account(user, Kind.EARNINGS), await self._platform(Kind.PAYOUTS, op_id), credits)
        return await self._apply(batch)

    # --- reading -------------------------------------------------------------------------------------

    async def transfers(self, op_id: str) -> list[Transfer]:
        """Every transfer of one operation (its parts and their resolutions), oldest first."""
        return await self.journal.transfers(op_id)

    async def applied(self, op_ids: list[str]) -> set[str]:
        """Which of ``op_ids`` exist as operations (one query: what a page of PPV attachments was paid)."""
        return await self.journal.applied(op_ids)

    async def history(self, user: uuid.UUID, kind: Kind = Kind.WALLET, *, before: int | None = None,
                      limit: int = 50) -> list[dict[str, Any]]:
        """The account's movements, newest first: ``seq`` (the cursor), ``id``, ``kind``, ``phase``,
        ``amount`` (signed: + in, - out), ``at``, ``meta``."""
        return await self.journal.history(await self.account(user, kind), before=before, limit=limit)
