"""``switchboard ledger check`` and ``switchboard ledger reconcile``: print, and exit 1 on any difference."""

from __future__ import annotations

from control_api.db import open_engine, sessions
from control_api.ledger.audit import check_ledger
from control_api.payments.lifecycle import open_gateway
from control_api.payments.reconcile import reconcile
from switchboard.settings import PaymentsSettings


async def run_ledger_command(action: str, database_url: str, settings: PaymentsSettings, *, days: int = 90) -> int:
    engine = open_engine(database_url, pool_size=2)
    try:
        if action == "check":
            report = await check_ledger(engine)
            print(f"accounts {report.accounts}  transfers {report.transfers}  "
                  f"debits {report.debits}  credits {report.credits}")
            for line in report.mismatched + report.negative:
                print("  " + line)
            print("the ledger balances" if report.ok else "THE LEDGER DOES NOT BALANCE")
            return 0 if report.ok else 1
        gateway = open_gateway(settings)
        if gateway is None:
            print("payments.stripe_api_key is not set: nothing to reconcile with")
            return 2
        try:
            differences = await reconcile(gateway, sessions(engine), days=days)
        finally:
            await gateway.close()
        for line in differences:
            print(line)
        print(f"{len(differences)} difference(s) between Stripe and the ledger")
        return 0 if not differences else 1
    finally:
        await engine.dispose()
