"""Reconciliation: Stripe's paid and refunded payments against our purchases and the ledger. Each
difference is named in words an operator can act on; none found means the two agree."""

from __future__ import annotations

import time

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import async_sessionmaker

from control_api.payments.models import Purchase, StripeRefund
from control_api.payments.types import Gateway


async def reconcile(gateway: Gateway, sessions: async_sessionmaker, *, days: int = 90) -> list[str]:
    """Differences between Stripe (succeeded credit-pack intents of the last ``days``, and their
    refunds) and the ledger (purchase deposits, refund reversals)."""
    since = int(time.time()) - days * 86400
    differences: list[str] = []
    paid = {i.id: i for i in await gateway.paid_intents(since) if "credits" in i.metadata}
    async with sessions() as session:
        credited = dict((await session.execute(text(
            "SELECT substr(batch, 10), sum(amount) FROM ledger_transfers WHERE kind = 'purchase' "
            "AND batch LIKE 'purchase:%' AND created_at >= to_timestamp(:since) GROUP BY batch"),
            {"since": since})).all())
        purchases = {p.intent_id: p for p in (await session.scalars(select(Purchase))).all()}
        reversed_ = {r.id: r for r in (await session.scalars(select(StripeRefund))).all()}
    for intent_id, intent in sorted(paid.items()):
        want = int(intent.metadata["credits"])
        got = credited.get(intent_id)
        if got is None:
            differences.append(f"{intent_id}: paid {intent.amount} {intent.currency} in Stripe, "
                               f"no credits in the ledger (want {want})")
        elif got != want:
            differences.append(f"{intent_id}: paid for {want} credits, the ledger credited {got}")
        purchase = purchases.get(intent_id)
        if purchase is not None and purchase.amount != intent.amount:
            differences.append(f"{intent_id}: Stripe charged {intent.amount}, the purchase says {purchase.amount}")
        for refund in await gateway.refunds_of(intent_id):
            if refund.status not in ("succeeded", "pending"):
                continue
            row = reversed_.get(refund.id)
            if row is None:
                differences.append(f"{intent_id}: refund {refund.id} of {refund.amount} in Stripe, "
                                   "no reversal in the ledger")
            elif row.amount != refund.amount:
                differences.append(f"{intent_id}: refund {refund.id} is {refund.amount} in Stripe, "
                                   f"{row.amount} in the ledger")
    for intent_id, got in sorted(credited.items()):
        if intent_id not in paid:
            differences.append(f"{intent_id}: the ledger credited {got} credits, Stripe shows no succeeded payment")
    return differences
