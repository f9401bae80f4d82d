"""The ledger on the real embedded Postgres: splits, idempotency, holds, the database's own
guards, and 1,000 concurrent spends from 50 wallets that cannot all be paid."""

from __future__ import annotations

import asyncio
import json
import random
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from control_api.errors import ValidationFailed
from control_api.ledger.audit import check_ledger
from control_api.ledger.book import Ledger
from control_api.ledger.types import InsufficientCredits, Kind, TransferConflict, UnknownTransfer, check_amount
from tests.control_api.payments.conftest import users


async def test_spend_splits_and_replays(engine: AsyncEngine) -> None:
    ledger = Ledger(engine, creator_share_percent=70)
    fan, creator = await users(engine, 2)
    assert await ledger.deposit("purchase:pi_1", fan, 100) is True
    assert await ledger.deposit("purchase:pi_1", fan, 100) is False  # the same purchase once
    spend = await ledger.spend("tip:1", fan, creator, 15)
    assert (spend.creator_amount, spend.platform_amount, spend.replayed) == (10, 5, False)  # 70% rounded down
    again = await ledger.spend("tip:1", fan, creator, 15)
    assert again.replayed and again.creator_amount == 10
    with pytest.raises(TransferConflict):
        await ledger.spend("tip:1", fan, creator, 16)  # same id, other amount
    assert (await ledger.balance(fan)).available == 85
    assert (await ledger.balance(creator, Kind.EARNINGS)).available == 10
    with pytest.raises(InsufficientCredits):
        await ledger.spend("tip:2", fan, creator, 86)
    assert (await ledger.balance(fan)).available == 85  # nothing moved
    with pytest.raises(TransferConflict):
        await ledger.spend("tip:3", fan, fan, 1)
    history = await ledger.history(fan)
    assert [h["amount"] for h in history] == [-5, -10, 100]
    report = await check_ledger(engine)
    assert report.ok and report.debits == report.credits, report


async def test_holds_post_void_and_lapse(engine: AsyncEngine) -> None:
    ledger = Ledger(engine, creator_share_percent=70)
    caller, creator = await users(engine, 2)
    await ledger.deposit("p", caller, 50)
    held = await ledger.hold("call:1:m1", caller, creator, 20, timeout_s=60)
    assert held.state == "pending"
    assert await ledger.balance(caller) == type(await ledger.balance(caller))(available=30, held=20)
    posted = await ledger.post("call:1:m1", 10)  # a part: the rest returns
    assert (posted.state, posted.amount, posted.creator_amount) == ("posted", 10, 7)
    assert (await ledger.post("call:1:m1", 10)).state == "posted"  # posting again answers the same
    with pytest.raises(TransferConflict):
        await ledger.void("call:1:m1")
    assert (await ledger.balance(caller)).available == 40
    await ledger.hold("call:1:m2", caller, creator, 40, timeout_s=60)
    with pytest.raises(InsufficientCredits):
        await ledger.hold("call:1:m3", caller, creator, 1, timeout_s=60)  # held credits cannot be spent
    assert (await ledger.void("call:1:m2")).state == "voided"
    await ledger.hold("call:1:m4", caller, creator, 40, timeout_s=0.05)
    await asyncio.sleep(0.2)
    assert (await ledger.balance(caller)).available == 40  # the lapsed hold is voided on read
    with pytest.raises(TransferConflict):
        await ledger.post("call:1:m4")
    await ledger.hold("call:1:m5", caller, None, 5, timeout_s=0.05)
    await asyncio.sleep(0.2)
    assert await ledger.expire_holds() == 1  # and by the sweeper
    with pytest.raises(UnknownTransfer):
        await ledger.post("nope")
    assert (await check_ledger(engine)).ok


async def test_a_spend_is_given_back(engine: AsyncEngine) -> None:
    ledger = Ledger(engine, creator_share_percent=70)
    fan, creator = await users(engine, 2)
    await ledger.deposit("p", fan, 100)
    await ledger.spend("ticket:show1:fan", fan, creator, 50)  # 35 to the creator, 15 to revenue
    await ledger.payout("payout:1", creator, 30)  # the creator keeps only 5 of it
    assert await ledger.reverse_spend("refund:ticket:show1:fan", "ticket:show1:fan") == 50
    assert await ledger.reverse_spend("refund:ticket:show1:fan", "ticket:show1:fan") == 50  # once
    assert (await ledger.balance(fan)).available == 100
    assert (await ledger.balance(creator, Kind.EARNINGS)).available == 0  # never below zero
    with pytest.raises(UnknownTransfer):
        await ledger.reverse_spend("r2", "no-such-spend")
    assert (await check_ledger(engine)).ok


async def test_the_database_refuses_overdrafts_and_edits(engine: AsyncEngine) -> None:
    ledger = Ledger(engine, creator_share_percent=70)
    (user,) = await users(engine, 1)
    await ledger.deposit("p", user, 5)
    wallet = await ledger.account(user, Kind.WALLET)
    async with engine.connect() as conn:
        with pytest.raises(DBAPIError, match="ledger_no_overdraft"):
            await conn.execute(text("UPDATE ledger_accounts SET debits_posted = 6 WHERE id = :a"), {"a": wallet})
        await conn.rollback()
        with pytest.raises(DBAPIError, match="immutable"):
            await conn.execute(text("UPDATE ledger_transfers SET amount = 1"))
        await conn.rollback()
        with pytest.raises(DBAPIError, match="immutable"):
            await conn.execute(text("DELETE FROM ledger_transfers"))
        await conn.rollback()
        with pytest.raises(DBAPIError, match="ledger_amount_positive"):
            await conn.execute(text("SELECT ledger_apply(CAST(:t AS jsonb), '[]')"), {"t": json.dumps(
                [{"id": "neg", "batch": "neg", "debit_account_id": wallet, "credit_account_id": wallet + 1,
                  "amount": -5, "phase": "single", "kind": "x"}])})


async def test_concurrent_spends_never_overdraw(engine: AsyncEngine) -> None:
    """1,000 spends from 50 wallets of 100 credits, 7 credits each (140 wanted per wallet), every
    spend sent twice at once: no wallet below zero, the books balance, each id applied once."""
    ledger = Ledger(engine, creator_share_percent=70)
    people = await users(engine, 60)
    wallets, creators = people[:50], people[50:]
    for w in wallets:
        await ledger.deposit(f"seed:{w}", w, 100)
    rng = random.Random(7)
    ops = [(f"spend:{i}", wallets[i % 50], rng.choice(creators)) for i in range(1000)]
    outcomes: dict[str, list[str]] = {op: [] for op, _, _ in ops}

    async def one(op: str, payer: uuid.UUID, creator: uuid.UUID) -> None:
        try:
            spend = await ledger.spend(op, payer, creator, 7)
            outcomes[op].append("replayed" if spend.replayed else "applied")
        except InsufficientCredits:
            outcomes[op].append("refused")

    jobs = [one(*op) for op in ops] + [one(*op) for op in ops]
    rng.shuffle(jobs)
    await asyncio.gather(*jobs)
    applied = [op for op, seen in outcomes.items() if "applied" in seen]
    assert all(seen.count("applied") <= 1 for seen in outcomes.values())
    assert len(applied) == 50 * (100 // 7)  # each wallet paid exactly as many as it could
    for w in wallets:
        assert (await ledger.balance(w)).available == 100 % 7
    async with engine.connect() as conn:
        batches = await conn.scalar(text("SELECT count(DISTINCT batch) FROM ledger_transfers WHERE kind = 'spend'"))
        total = await conn.scalar(text("SELECT sum(credits_posted - debits_posted) FROM ledger_accounts"))
        negative = await conn.scalar(text(
            "SELECT count(*) FROM ledger_accounts WHERE no_overdraft AND credits_posted < debits_posted"))
    assert (batches, total, negative) == (len(applied), 0, 0)
    report = await check_ledger(engine)
    assert report.ok, report


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.integers(), st.floats(allow_nan=True), st.text(), st.booleans(), st.none(),
                 st.integers(min_value=10**12 + 1), st.decimals(allow_nan=False)))
def test_amounts_are_positive_bounded_integers(amount: object) -> None:
    if isinstance(amount, int) and not isinstance(amount, bool) and 0 < amount <= 10**12:
        assert check_amount(amount) == amount
    else:
        with pytest.raises(ValidationFailed):
            check_amount(amount)
