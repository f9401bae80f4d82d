"""A credit pack's ``payment_intent.succeeded``, settled from its own signed event in one statement.

Stripe signs the whole event, and the event carries the PaymentIntent as it was when it succeeded: a
terminal state (a succeeded intent never goes back; refunds are objects of their own, with events
of their own). So once the signature is verified there is nothing to re-read (Stripe's guidance:
a verified event's ``data.object`` can be trusted; re-fetch when order matters, and it does not
here). Everything the event causes is written by one autocommit statement, one round trip and one
WAL flush, committed before the answer (it is money):

1. the event, stored in the inbox already marked processed (a second delivery finds it);
2. the outbox event ``credits_purchased`` (``evt_purchase_<pi>``) and its deliveries;
3. the purchase row (``succeeded``);
4. the credits, ``purchase:<pi>``, through ``ledger_apply_many`` (what the ledger's writer calls).

Each step runs only if the one before wrote a row, so the locks are taken in this order: the
outbox event before the purchase row before the ledger's accounts, the order the slow path (the
inbox's transaction, a refund's reversal) takes them in, so neither waits for the other in a cycle
that spans two connections (which Postgres could not see). When the outbox event exists already,
the purchase was credited before (it is written only after the credits commit): nothing more is
done. Any failure rolls the whole statement back, and the caller falls back to the inbox's path
(store, then act by re-reading Stripe; the sweeper retries)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import asyncpg

from control_api.payments.service import Payments
from control_api.payments.types import Intent

log = logging.getLogger("switchboard.api.webhooks")

_LEDGER_ARGS = ", ".join(f"${13 + k}::{t}[]" for k, t in enumerate(
    ("integer", "text", "text", "bigint", "bigint", "bigint", "text", "text", "text", "timestamptz", "text",
     "integer", "bigint", "bigint", "bigint", "bigint", "bigint", "uuid", "uuid")))
SETTLE = f"""
WITH stored AS (
  INSERT INTO stripe_events (id, type, created, payload, processed_at, attempts, error)
  VALUES ($1::text, $2::text, $3::bigint, $4::jsonb, now(), 1, '') ON CONFLICT (id) DO NOTHING RETURNING id),
made AS (
  INSERT INTO webhook_events (id, type, data) SELECT $5::text, 'credits_purchased', $6::jsonb FROM stored
  ON CONFLICT (id) DO NOTHING RETURNING id),
sent AS (
  INSERT INTO webhook_deliveries (endpoint_id, event_id) SELECT e.id, made.id FROM webhook_endpoints e, made
  WHERE cardinality(e.events) = 0 OR 'credits_purchased' = ANY(e.events)),
bought AS (
  INSERT INTO purchases (intent_id, account_id, pack, credits, amount, currency, status)
  SELECT $7::text, $8::uuid, $9::text, $10::bigint, $11::bigint, $12::text, 'succeeded' FROM made
  ON CONFLICT (intent_id) DO UPDATE SET status = 'succeeded',
    updated_at = CASE WHEN purchases.status = 'succeeded' THEN purchases.updated_at ELSE now() END
  RETURNING intent_id),
moved AS (
  SELECT l.outcome, l.detail FROM bought, LATERAL ledger_apply_many({_LEDGER_ARGS}) AS l)
SELECT stored.id, (SELECT CASE WHEN m.outcome IN ('applied', 'replayed') THEN m.outcome
  -- SQL has no RAISE: a failed cast aborts the statement (so nothing of it commits) with this text.
  ELSE ('the ledger refused the deposit: ' || m.outcome || ' ' || coalesce(m.detail, ''))::integer::text END
  FROM moved m) AS outcome
FROM stored
"""


@dataclass(frozen=True)
class Settled:
    """What the statement did."""

    stored: bool
    """False: the event id was in the inbox already (a duplicate; nothing else was done)."""
    credited: bool
    """True when the credits were deposited now (False: a replay, or credited before)."""


def paid_intent(obj: dict[str, Any]) -> Intent | None:
    """The succeeded intent an event's object is, when the object is whole (Stripe sends all of it):
    None for anything else (a stub with only an id, another status), which the inbox re-reads."""
    meta = obj.get("metadata")
    if not (obj.get("object") == "payment_intent" and obj.get("status") == "succeeded"
            and isinstance(obj.get("id"), str) and type(obj.get("amount")) is int
            and isinstance(obj.get("currency"), str) and isinstance(meta, dict)):
        return None
    customer = obj.get("customer")
    return Intent(id=obj["id"], status="succeeded", amount=obj["amount"], currency=obj["currency"],
                  client_secret="", customer=customer if isinstance(customer, str) else None,
                  metadata={str(k): str(v) for k, v in meta.items()})


async def settle(payments: Payments, event: dict[str, Any], intent: Intent) -> Settled | None:
    """Stores ``event`` (a verified ``payment_intent.succeeded`` whose object is ``intent``) and
    credits its pack, in one statement. None: not a pack of ours, or the statement failed (nothing
    of it committed); the caller takes the inbox's path then."""
    purchase = Payments.purchase_of(intent)
    if purchase is None:
        return None
    ledger = payments.ledger
    try:
        deposit = await ledger.deposit_arguments(
            f"purchase:{intent.id}", purchase["account_id"], purchase["credits"],
            meta={"intent": intent.id, "pack": purchase["pack"], "paid": purchase["amount"],
                  "currency": purchase["currency"]})
        outbox = {"user_id": str(purchase["account_id"]), "intent_id": intent.id, "pack": purchase["pack"],
                  "credits": purchase["credits"], "amount": purchase["amount"], "currency": purchase["currency"]}
        async with ledger.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver: asyncpg.Connection = raw.driver_connection  # type: ignore[assignment]
            row = await driver.fetchrow(
                SETTLE, event["id"], event["type"], event["created"], json.dumps(event), f"evt_purchase_{intent.id}",
                json.dumps(outbox), intent.id, purchase["account_id"], purchase["pack"], purchase["credits"],
                purchase["amount"], purchase["currency"], *deposit)
    except Exception as exc:  # nothing committed: the inbox's path stores the event and retries
        log.warning("webhook %s not settled in one statement (%s); the inbox acts on it", event["id"], exc)
        return None
    if row is None:
        return Settled(stored=False, credited=False)
    credited = row["outcome"] == "applied"
    if credited:
        payments.notify_soon(purchase["account_id"], {"type": "wallet", "reason": "purchase",
                                                      "credits": purchase["credits"]})
    return Settled(stored=True, credited=credited)
