"""Group commit for the ledger: operations that arrive while a batch is being written go together
in the next one, as one call of ``ledger_apply_many`` (migration 0011): one round trip and one
commit (one WAL flush) for the whole batch, each operation with its own outcome.

There is no timer: a lone operation is written at once; under load, batches grow by themselves to
what arrived during the previous write (at most ``max_batch``). Nothing is weakened for it: each
operation still happens once per id, whole or not at all, and never takes a wallet below zero (the
database checks each in its own subtransaction), and no caller hears "done" before the commit.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("switchboard.api.ledger")

_APPLY_MANY = text("SELECT i, outcome, amount, creator_amount, payer, phase, detail "
                   "FROM ledger_apply_many(CAST(:ops AS jsonb))")
_RETRYABLE = ("40001", "40P01")  # serialization failure, deadlock: the batch is retried whole
_ATTEMPTS = 3


@dataclass(frozen=True)
class Outcome:
    """What the database did with one operation."""

    outcome: str
    """``applied``, ``replayed``, ``short``, ``conflict``, ``hidden`` or ``invalid``."""
    amount: int | None = None
    """For a replay: the stored operation's amount (its single or pending parts)."""
    creator_amount: int | None = None
    """For a replay: the creator's part of it."""
    payer: str | None = None
    """For a replay: the stored operation's payer (``meta.payer``)."""
    phase: str | None = None
    """For a replay: ``single`` or ``pending``."""
    detail: str | None = None
    """For ``invalid`` and ``conflict``: the database's message."""


def _sqlstate(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    cause = getattr(orig, "__cause__", None)
    return str(getattr(cause, "sqlstate", "") or getattr(orig, "sqlstate", "") or "")


class Writer:
    """One per :class:`~control_api.ledger.book.Ledger`. ``submit`` is safe to call from any task
    of the loop; the drain task lives only while there is work (nothing to close when idle)."""

    def __init__(self, engine: AsyncEngine, *, max_batch: int = 256) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._queue: list[tuple[dict[str, Any], asyncio.Future[Outcome]]] = []
        self._drain: asyncio.Task[None] | None = None
        self.batches = 0
        """Batches written since start (with ``operations``: the mean batch size)."""
        self.operations = 0

    async def submit(self, op: dict[str, Any]) -> Outcome:
        """Writes one operation (``transfers``, ``deltas``; optional ``payer``/``creator`` for the
        visibility check) with whatever else is waiting; returns once its batch is committed."""
        fut: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queue.append((op, fut))
        if self._drain is None or self._drain.done():
            self._drain = asyncio.get_running_loop().create_task(self._run())
        return await fut

    async def _run(self) -> None:
        while self._queue:
            taken = self._queue[:self._max_batch]
            del self._queue[:self._max_batch]
            batch = [(op, fut) for op, fut in taken if not fut.done()]  # a cancelled caller's op is dropped
            if not batch:
                continue
            try:
                outcomes = await self._write([op for op, _ in batch])
            except Exception as exc:  # the whole batch failed (database down): every caller hears it
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            except BaseException as exc:  # cancelled (shutdown): nobody may wait forever
                for _, fut in batch + self._queue:
                    if not fut.done():
                        fut.set_exception(ConnectionError("the ledger writer stopped"))
                self._queue.clear()
                raise exc from None
            self.batches += 1
            self.operations += len(batch)
            for (_, fut), outcome in zip(batch, outcomes, strict=True):
                if not fut.done():
                    fut.set_result(outcome)

    async def _write(self, ops: list[dict[str, Any]]) -> list[Outcome]:
        payload = {"ops": json.dumps(ops)}
        for attempt in range(_ATTEMPTS):
            try:
                async with self._engine.connect() as conn:
                    rows = (await conn.execute(_APPLY_MANY, payload)).all()
                break
            except DBAPIError as exc:
                if _sqlstate(exc) not in _RETRYABLE or attempt == _ATTEMPTS - 1:
                    raise
                log.info("ledger batch of %d retried after %s", len(ops), _sqlstate(exc))
        found: list[Outcome | None] = [None] * len(ops)
        for row in rows:
            found[row.i] = Outcome(row.outcome, row.amount, row.creator_amount, row.payer, row.phase, row.detail)
        if any(o is None for o in found):
            raise RuntimeError("ledger_apply_many left an operation without an outcome")
        return found  # type: ignore[return-value]
