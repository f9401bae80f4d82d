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
import contextlib
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("switchboard.api.ledger")

_APPLY_MANY = ("SELECT i, outcome, amount, creator_amount, payer, phase, detail FROM ledger_apply_many("
               "$1::integer[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::text[], "
               "$8::text[], $9::text[], $10::timestamptz[], $11::text[], $12::integer[], $13::bigint[], "
               "$14::bigint[], $15::bigint[], $16::bigint[], $17::bigint[], $18::uuid[], $19::uuid[])")
_RETRYABLE = ("40001", "40P01", "23505")
"""Serialization failure, deadlock, and a unique id or resolution taken by a concurrent writer between
the batch's checks and its insert: the batch is retried whole (the retry sees what won)."""
_ATTEMPTS = 3


@dataclass(frozen=True)
class Outcome:
    """What the database did with one operation."""

    outcome: str
    """``applied``, ``replayed``, ``short``, ``conflict``, ``hidden``, ``invalid`` (or ``retry``,
    which the writer handles itself: the operation goes with the next batch)."""
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


def columns(ops: list[dict[str, Any]]) -> list[list[Any]]:
    """The batch as ``ledger_apply_many`` takes it: one array per field (typed, no JSON to parse), in
    the order of its 19 arguments."""
    t: list[list[Any]] = [[] for _ in range(11)]
    d: list[list[Any]] = [[] for _ in range(6)]
    payers: list[uuid.UUID | None] = []
    creators: list[uuid.UUID | None] = []
    for k, op in enumerate(ops):
        meta = None
        for r in op["transfers"]:
            if meta is None:
                meta = json.dumps(r["meta"]) if r["meta"] else ""
            for column, value in zip(t, (k, r["id"], r["batch"], r["debit_account_id"], r["credit_account_id"],
                                         r["amount"], r["phase"], r["kind"], r["pending_id"], r["expires_at"],
                                         meta or None), strict=True):
                column.append(value)
        for delta in op["deltas"]:
            for column, value in zip(d, (k, delta["account"], delta["dp"], delta["cp"], delta["dq"], delta["cq"]),
                                     strict=True):
                column.append(value)
        payers.append(op.get("payer"))
        creators.append(op.get("creator"))
    return [*t, *d, payers, creators]


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
        """Writes one operation (``transfers``: rows as ``ledger_transfers`` takes them; ``deltas``:
        ``account``, ``dp``, ``cp``, ``dq``, ``cq``, one per account; optional ``payer`` and
        ``creator`` UUIDs for the visibility check) with whatever else is waiting; returns once its
        batch is committed. A table constraint the batch's checks let through: asyncpg's error."""
        fut: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queue.append((op, fut))
        if self._drain is None or self._drain.done():
            self._drain = asyncio.get_running_loop().create_task(self._run())
        return await fut

    async def close(self, timeout_s: float = 5.0) -> None:
        """Lets the batches already taken finish (at most ``timeout_s``), then cancels the rest: their
        callers get ConnectionError (a batch cut off mid-statement may or may not have committed; a
        retry with the same operation ids applies them once either way). Safe to call twice."""
        drain = self._drain
        if drain is None or drain.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(drain), timeout_s)
        except TimeoutError:
            drain.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await drain

    async def _run(self) -> None:
        while self._queue:
            taken = self._queue[:self._max_batch]
            del self._queue[:self._max_batch]
            batch = [(op, fut) for op, fut in taken if not fut.done()]  # a cancelled caller's op is dropped
            if not batch:
                continue
            try:
                outcomes: list[Outcome | BaseException] = list(await self._write([op for op, _ in batch]))
            except asyncpg.PostgresError as exc:
                if len(batch) == 1:
                    outcomes = [exc]
                else:  # one operation the checks above the table let through: find it, spare the rest
                    log.warning("ledger batch of %d failed (%s); writing its operations one by one",
                                len(batch), exc.sqlstate)
                    outcomes = [await self._alone(op) for op, _ in batch]
            except Exception as exc:  # the database is unreachable: every caller hears it
                outcomes = [exc] * len(batch)
            except BaseException:  # cancelled (shutdown): nobody may wait forever
                for _, fut in batch + self._queue:
                    if not fut.done():
                        fut.set_exception(ConnectionError("the ledger writer stopped"))
                self._queue.clear()
                raise
            self.batches += 1
            for (op, fut), outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, Outcome) and outcome.outcome == "retry":
                    self._queue.append((op, fut))  # it shared an id with an earlier one: decided next time
                    continue
                self.operations += 1
                if fut.done():
                    continue
                if isinstance(outcome, BaseException):
                    fut.set_exception(outcome)
                else:
                    fut.set_result(outcome)

    async def _alone(self, op: dict[str, Any]) -> Outcome | BaseException:
        try:
            return (await self._write([op]))[0]
        except Exception as exc:
            return exc

    async def _write(self, ops: list[dict[str, Any]]) -> list[Outcome]:
        args = columns(ops)
        for attempt in range(_ATTEMPTS):
            try:
                async with self._engine.connect() as conn:
                    # asyncpg itself: one prepared statement, no ORM or SQL compilation per batch.
                    raw = await conn.get_raw_connection()
                    driver: asyncpg.Connection = raw.driver_connection  # type: ignore[assignment]
                    rows = await driver.fetch(_APPLY_MANY, *args)
                break
            except asyncpg.PostgresError as exc:
                if exc.sqlstate not in _RETRYABLE or attempt == _ATTEMPTS - 1:
                    raise
                log.info("ledger batch of %d retried after %s", len(ops), exc.sqlstate)
        found: list[Outcome | None] = [None] * len(ops)
        for row in rows:
            found[row["i"]] = Outcome(row["outcome"], row["amount"], row["creator_amount"], row["payer"], row["phase"],
                                      row["detail"])
        if any(o is None for o in found):
            raise RuntimeError("ledger_apply_many left an operation without an outcome")
        return found  # type: ignore[return-value]
