"""The ledger's journal: an operation's batch of transfers as it is written (with the balance deltas
they cause), and the reads of ``ledger_transfers`` that tell what an operation did (its parts, a
hold's state, what a replay answers). :class:`~control_api.ledger.book.Ledger` writes through it.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from control_api.ledger.types import Spend, Transfer, TransferConflict, UnknownTransfer

_COLUMNS = ("id, batch, debit_account_id, credit_account_id, amount, phase, kind, pending_id, expires_at, meta, "
            "created_at")


class Batch:
    """Transfers of one operation and the balance deltas they cause."""

    def __init__(self, batch: str, kind: str, meta: dict[str, Any]) -> None:
        self.batch, self.kind, self.meta = batch, kind, meta
        self.rows: list[dict[str, Any]] = []
        self.deltas: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0])

    def add(self, tid: str, debit: int, credit: int, amount: int, phase: str = "single",
            pending_id: str | None = None, expires_at: datetime | None = None, kind: str | None = None,
            pending_amount: int = 0) -> None:
        """``pending_amount``: for a post/void, the held amount it releases."""
        self.rows.append({"id": tid, "batch": self.batch, "debit_account_id": debit, "credit_account_id": credit,
                          "amount": amount, "phase": phase, "kind": kind or self.kind, "pending_id": pending_id,
                          "expires_at": expires_at, "meta": self.meta})
        d, c = self.deltas[debit], self.deltas[credit]
        if phase == "single":
            d[0] += amount
            c[1] += amount
        elif phase == "pending":
            d[2] += amount
            c[3] += amount
        else:
            d[2] -= pending_amount
            c[3] -= pending_amount
            if phase == "post":
                d[0] += amount
                c[1] += amount

    def op(self) -> dict[str, Any]:
        """The operation as ``ledger_apply_many`` takes it."""
        deltas = [{"account": a, "dp": v[0], "cp": v[1], "dq": v[2], "cq": v[3]} for a, v in self.deltas.items()]
        return {"transfers": self.rows, "deltas": deltas}


class Journal:
    """Reads of the transfers table on the ledger's autocommit engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def transfers(self, op_id: str) -> list[Transfer]:
        """Every transfer of one operation (its parts and their resolutions), oldest first."""
        async with self._engine.connect() as conn:
            rows = (await conn.execute(text(
                f"SELECT {_COLUMNS} FROM ledger_transfers WHERE batch = :b ORDER BY seq"), {"b": op_id})).all()
        return [Transfer(*r) for r in rows]

    async def applied(self, op_ids: list[str]) -> set[str]:
        """Which of ``op_ids`` exist as operations (one query: what a page of PPV attachments was paid)."""
        if not op_ids:
            return set()
        async with self._engine.connect() as conn:
            found = (await conn.scalars(text("SELECT DISTINCT batch FROM ledger_transfers WHERE batch = ANY(:b)"),
                                        {"b": list(op_ids)})).all()
        return set(found)

    async def history(self, account: int, *, before: int | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """The account's movements, newest first, as :meth:`~control_api.ledger.book.Ledger.history` gives them."""
        async with self._engine.connect() as conn:
            rows = (await conn.execute(text(
                "SELECT seq, id, kind, phase, amount, debit_account_id, created_at, meta FROM ledger_transfers "
                "WHERE (debit_account_id = :a OR credit_account_id = :a) AND seq < :before "
                "ORDER BY seq DESC LIMIT :n"), {"a": account, "before": before or 2**62, "n": limit})).all()
        return [{"seq": r.seq, "id": r.id, "kind": r.kind, "phase": r.phase,
                 "amount": -r.amount if r.debit_account_id == account else r.amount,
                 "at": r.created_at.isoformat(), "meta": r.meta} for r in rows]

    async def hold(self, op_id: str) -> tuple[list[Transfer], str]:
        """A hold's pending parts and its state: ``pending``, ``posted``, ``voided`` or ``expired``."""
        rows = await self.transfers(op_id)
        parts = [r for r in rows if r.phase == "pending"]
        if not parts:
            raise UnknownTransfer(f"no hold {op_id!r}")
        done = [r for r in rows if r.phase in ("post", "void")]
        if not done:
            return parts, "pending"
        if any(r.phase == "post" for r in done):
            return parts, "posted"
        return parts, "expired" if any(r.kind == "expire" for r in done) else "voided"

    async def resolved(self, op_id: str, parts: list[Transfer], state: str, *, want: tuple[str, ...]) -> Spend:
        """The resolved hold as a :class:`Spend`; TransferConflict unless ``state`` is one of ``want``."""
        if state not in want:
            raise TransferConflict(f"the hold {op_id!r} is {state}")
        rows = await self.transfers(op_id)
        posted = {r.pending_id: r.amount for r in rows if r.phase == "post"}
        meta = parts[0].meta
        creator = uuid.UUID(meta["creator"]) if meta.get("creator") else None
        c = sum(v for k, v in posted.items() if k and k.endswith("#c"))
        p = sum(v for k, v in posted.items() if k and k.endswith("#p"))
        return Spend(op_id, uuid.UUID(meta["payer"]), creator, c + p, c, p, state)

    async def replay(self, op_id: str, payer: uuid.UUID, amount: int) -> Spend:
        """What a repeated spend or hold answers: the stored one, which must be this one (else TransferConflict)."""
        rows = await self.transfers(op_id)
        parts = [r for r in rows if r.phase in ("single", "pending")]
        if not parts or parts[0].meta.get("payer") != str(payer) or sum(p.amount for p in parts) != amount:
            raise TransferConflict(f"operation {op_id!r} exists with other accounts or amounts")
        meta = parts[0].meta
        creator = uuid.UUID(meta["creator"]) if meta.get("creator") else None
        c = sum(p.amount for p in parts if p.id.endswith("#c"))
        state = "posted" if parts[0].phase == "single" else (await self.hold(op_id))[1]
        return Spend(op_id, payer, creator, amount, c, amount - c, state, replayed=True)
