"""Group commit (control_api/ledger/writer.py): operations that arrive together are written in one
statement and one commit, and each still gets its own outcome: applied, replayed, refused for want
of credits, refused as a conflict or for a hidden creator, without touching the others."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from control_api.ledger.audit import check_ledger
from control_api.ledger.book import Ledger
from control_api.ledger.journal import Batch
from control_api.ledger.types import CreatorUnavailable, InsufficientCredits, Kind, Spend, TransferConflict
from control_api.ledger.writer import Outcome
from tests.control_api.conftest import Api, api_settings
from tests.control_api.payments.conftest import Stripe, payments_settings, users


async def test_one_batch_keeps_each_outcome(engine: AsyncEngine) -> None:
    ledger = Ledger(engine, creator_share_percent=70)
    fan, poor, creator, blocker = await users(engine, 4)
    await ledger.deposit("seed:fan", fan, 10)
    await ledger.deposit("seed:poor", poor, 2)
    await ledger.deposit("seed:blocker", blocker, 5)
    await ledger.spend("old", fan, creator, 1)
    async with engine.begin() as conn:
        await conn.execute(text("INSERT INTO blocks (blocker_id, blocked_id) VALUES (:a, :b)"),
                           {"a": blocker, "b": fan})
    for shard in range(8):  # account ids known beforehand: every spend reaches the writer in this turn
        await ledger.account(None, Kind.REVENUE, shard)
    for who in (fan, creator, blocker):
        await ledger.account(who, Kind.EARNINGS)
    batches = ledger.writer.batches
    outcomes = await asyncio.gather(
        ledger.spend("a", fan, creator, 3, creator_visible=True),
        ledger.spend("a", fan, creator, 3, creator_visible=True),  # the same operation, in the same batch
        ledger.spend("b", poor, creator, 3),  # short: refused alone
        ledger.spend("old", fan, creator, 2),  # the id of another operation
        ledger.spend("c", fan, blocker, 1, creator_visible=True),  # hidden: a block stands between them
        ledger.spend("d", blocker, fan, 1, creator_visible=True),  # either way
        ledger.spend("e", fan, None, 2),
        return_exceptions=True)
    # All of them in one statement; the repeat of "a" is decided with the next batch (a replay there).
    assert ledger.writer.batches == batches + 2
    first, again, short, conflict, hidden, hidden_back, revenue = outcomes
    assert isinstance(first, Spend) and isinstance(again, Spend)
    assert sorted([first.replayed, again.replayed]) == [False, True]
    assert (again.creator_amount, again.platform_amount) == (2, 1)
    assert isinstance(short, InsufficientCredits)
    assert isinstance(conflict, TransferConflict)
    assert isinstance(hidden, CreatorUnavailable) and isinstance(hidden_back, CreatorUnavailable)
    assert isinstance(revenue, Spend) and revenue.platform_amount == 2
    assert (await ledger.balance(fan)).available == 10 - 1 - 3 - 2
    assert (await ledger.balance(poor)).available == 2
    assert (await ledger.balance(blocker)).available == 5
    with pytest.raises(CreatorUnavailable):
        await ledger.spend("f", fan, uuid.uuid4(), 1, creator_visible=True)  # no such account
    assert (await check_ledger(engine)).ok


@pytest.fixture
async def roomy_api(make_api: Callable[..., Awaitable[Api]], localstripe: str) -> AsyncIterator[Stripe]:
    """The API with room for every concurrent request of the test (no 503 from admission)."""
    api = await make_api(settings=api_settings(max_in_flight=128, admission_queue=128, admission_wait_ms=600_000),
                         payments=payments_settings(localstripe))
    hands = Stripe(localstripe, api)
    yield hands
    await hands.close()


async def test_concurrent_tips_through_http(roomy_api: Stripe) -> None:
    """Tips sent at once (each twice) from wallets that cannot pay them all: each tip id is charged
    at most once, each wallet pays exactly what it holds, and they were committed in fewer batches
    than tips."""
    stripe_api = roomy_api
    api, ledger = stripe_api.api, stripe_api.payments.ledger
    fans = [await api.user() for _ in range(6)]
    creators = [await api.user() for _ in range(2)]
    for fan in fans:
        await ledger.deposit(f"seed:{fan.id}", uuid.UUID(fan.id), 20)
    batches, operations = ledger.writer.batches, ledger.writer.operations

    async def tip(fan_i: int, n: int) -> tuple[int, int, int]:
        status, _ = await api.call("POST", f"/users/{creators[n % 2].id}/tips", fans[fan_i],
                                   json={"id": f"t{n}", "amount": 3})
        return fan_i, n, status

    jobs = [tip(f, n) for _ in range(2) for f in range(len(fans)) for n in range(8)]  # 24 credits wanted of 20
    seen: dict[tuple[int, int], list[int]] = defaultdict(list)
    for fan_i, n, status in await asyncio.gather(*jobs):
        seen[(fan_i, n)].append(status)
    for statuses in seen.values():
        assert sorted(statuses) in ([200, 201], [402, 402]), statuses
    for f, fan in enumerate(fans):
        assert sum(1 for (fi, _), s in seen.items() if fi == f and 201 in s) == 20 // 3
        assert (await stripe_api.wallet(fan))["available"] == 20 % 3
    assert ledger.writer.operations - operations == len(jobs)
    assert ledger.writer.batches - batches < len(jobs)
    status, _ = await api.call("POST", f"/users/{uuid.uuid4()}/tips", fans[0], json={"id": "x", "amount": 1})
    assert status == 404
    assert (await check_ledger(ledger.engine)).ok


async def test_an_operation_the_table_refuses_fails_alone(engine: AsyncEngine) -> None:
    """An operation that passes the batch's own checks but breaks a table constraint aborts its batch;
    the writer then writes the batch's operations one by one, so only that one fails."""
    ledger = Ledger(engine, creator_share_percent=70)
    fan, creator = await users(engine, 2)
    await ledger.deposit("seed", fan, 10)
    wallet, earnings = await ledger.account(fan, Kind.WALLET), await ledger.account(creator, Kind.EARNINGS)
    good = Batch("good", "spend", {"payer": str(fan)})
    good.add("good#c", wallet, earnings, 2)
    bad = Batch("bad", "spend", {"payer": str(fan)})
    bad.add("bad#c", wallet, wallet, 1)  # from an account to itself: ledger_distinct_accounts refuses it
    applied, refused = await asyncio.gather(ledger.writer.submit(good.op()), ledger.writer.submit(bad.op()),
                                            return_exceptions=True)
    assert isinstance(applied, Outcome) and applied.outcome == "applied"
    assert isinstance(refused, asyncpg.IntegrityConstraintViolationError)
    assert "ledger_distinct_accounts" in str(refused)
    assert (await ledger.balance(fan)).available == 8
    assert (await check_ledger(engine)).ok
