"""``switchboard ledger check`` and ``switchboard ledger reconcile`` on real data."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import text

from control_api.db import open_engine
from control_api.ledger.book import Ledger
from control_api.payments.commands import run_ledger_command
from switchboard.cli import main
from tests.control_api.payments.conftest import Stripe, payments_settings


def test_ledger_check_command(database_url: str, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    async def books() -> None:
        engine = open_engine(database_url, pool_size=2)
        ledger = Ledger(engine, creator_share_percent=70)
        ids = [uuid.uuid4(), uuid.uuid4()]
        async with engine.begin() as conn:
            for i in ids:
                await conn.execute(text("INSERT INTO accounts (id, email, password_hash) VALUES (:i, :e, 'x')"),
                                   {"i": i, "e": f"{i.hex}@example.com"})
        await ledger.deposit("p1", ids[0], 100)
        await ledger.spend("s1", ids[0], ids[1], 40)
        await ledger.hold("h1", ids[0], ids[1], 10, timeout_s=60)
        await engine.dispose()

    asyncio.run(books())
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", database_url)
    assert main(["ledger", "check"]) == 0
    out = capsys.readouterr().out
    assert "the ledger balances" in out and "debits 150  credits 150" in out

    async def tamper() -> None:
        engine = open_engine(database_url, pool_size=2)
        async with engine.begin() as conn:  # a balance moved without a transfer
            await conn.execute(text("UPDATE ledger_accounts SET credits_posted = credits_posted + 1 "
                                    "WHERE kind = 'earnings'"))
        await engine.dispose()

    asyncio.run(tamper())
    assert main(["ledger", "check"]) == 1
    out = capsys.readouterr().out
    assert "DOES NOT BALANCE" in out and "earnings" in out


async def test_reconcile_names_every_difference(stripe_api: Stripe, database_url: str, localstripe: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    user = await stripe_api.api.user()
    card = await stripe_api.card("ok")
    _, body = await stripe_api.api.call("POST", "/payments/credit-packs/small/intent", user,
                                        json={"payment_method": card})
    settings = payments_settings(localstripe)
    capsys.readouterr()
    await run_ledger_command("reconcile", database_url, settings)
    assert body["intent_id"] not in capsys.readouterr().out  # this purchase agrees
    # A refund made in Stripe whose event never came: named, until its reversal is applied.
    refund = await stripe_api.stripe("POST", "/v1/refunds", payment_intent=body["intent_id"])
    assert await run_ledger_command("reconcile", database_url, settings) == 1
    out = capsys.readouterr().out
    assert f"refund {refund['id']}" in out and "no reversal in the ledger" in out
    await stripe_api.payments.sync_refunds(body["intent_id"])
    await run_ledger_command("reconcile", database_url, settings)
    assert body["intent_id"] not in capsys.readouterr().out
    assert await run_ledger_command("check", database_url, settings) == 0
