"""``switchboard ledger check``: proves the books from the transfers alone.

Every transfer debits one account and credits another by the same amount, so the debits of all
accounts equal their credits; every stored balance must equal the sum of the transfers that touch
it (posted: single and post transfers; pending: holds not yet resolved); no overdraft-protected
account may be below zero.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from control_api.ledger.types import CheckReport

_RECOMPUTED = """
WITH open_holds AS (
  SELECT p.* FROM ledger_transfers p
  WHERE p.phase = 'pending' AND NOT EXISTS (SELECT 1 FROM ledger_transfers r WHERE r.pending_id = p.id)
), moves AS (
  SELECT debit_account_id AS account, amount AS dp, 0 AS cp, 0 AS dq, 0 AS cq
    FROM ledger_transfers WHERE phase IN ('single', 'post')
  UNION ALL
  SELECT credit_account_id, 0, amount, 0, 0 FROM ledger_transfers WHERE phase IN ('single', 'post')
  UNION ALL
  SELECT debit_account_id, 0, 0, amount, 0 FROM open_holds
  UNION ALL
  SELECT credit_account_id, 0, 0, 0, amount FROM open_holds
), sums AS (
  SELECT account, sum(dp) AS dp, sum(cp) AS cp, sum(dq) AS dq, sum(cq) AS cq FROM moves GROUP BY account
)
SELECT a.id, a.kind, a.owner_id, a.no_overdraft,
       a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending,
       coalesce(s.dp, 0), coalesce(s.cp, 0), coalesce(s.dq, 0), coalesce(s.cq, 0)
FROM ledger_accounts a LEFT JOIN sums s ON s.account = a.id
ORDER BY a.id
"""


async def check_ledger(engine: AsyncEngine) -> CheckReport:
    """Reads the whole ledger in one repeatable-read snapshot and reports every difference."""
    async with engine.execution_options(isolation_level="REPEATABLE READ").connect() as conn:
        rows = (await conn.execute(text(_RECOMPUTED))).all()
        transfers = int(await conn.scalar(text("SELECT count(*) FROM ledger_transfers")) or 0)
        await conn.rollback()
    debits = credits = 0
    mismatched: list[str] = []
    negative: list[str] = []
    for row in rows:
        (account, kind, owner, no_overdraft, dp, cp, dq, cq, sdp, scp, sdq, scq) = row
        debits += dp + dq
        credits += cp + cq
        if (dp, cp, dq, cq) != (sdp, scp, sdq, scq):
            mismatched.append(f"account {account} ({kind} {owner or 'platform'}): stored debits/credits posted "
                              f"{dp}/{cp} pending {dq}/{cq}, transfers say {sdp}/{scp} pending {sdq}/{scq}")
        if no_overdraft and dp + dq > cp:
            negative.append(f"account {account} ({kind} {owner}): balance {cp - dp - dq}")
    return CheckReport(len(rows), transfers, debits, credits, mismatched, negative)
