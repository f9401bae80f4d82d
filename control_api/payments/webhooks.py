"""Stripe webhooks: verified on the raw body, stored by event id in the inbox before anything acts,
then acted on by re-reading the object from Stripe (so duplicates, replays and any order of delivery
leave one effect). The endpoint answers as soon as the event is acted on or after a short budget,
whichever comes first; the sweeper retries what failed or was cut short.

One exception: a credit pack's ``payment_intent.succeeded`` whose signed object is whole (as Stripe
sends it) is stored and acted on from that object in one statement (:mod:`.settlement`): a
succeeded intent is terminal, so its order does not matter and there is nothing to re-read."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, text, true
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from control_api.errors import BadRequest
from control_api.payments.models import StripeEvent
from control_api.payments.service import Payments
from control_api.payments.settlement import paid_intent, settle
from control_api.payments.signature import BadSignature, verify
from control_api.payments.types import Intent, Refund
from switchboard.tasks import stop_tasks

log = logging.getLogger("switchboard.api.webhooks")

SUBSCRIPTION_EVENTS = ("customer.subscription.",)
INVOICE_EVENTS = ("invoice.paid", "invoice.payment_succeeded", "invoice.payment_failed", "invoice.updated",
                  "invoice.marked_uncollectible")
REFUND_EVENTS = ("charge.refunded", "charge.refund.updated", "refund.created", "refund.updated")
MAX_ATTEMPTS = 20


def intent_of(kind: str, obj: dict[str, Any]) -> str | None:
    """The PaymentIntent an event of ``kind`` about ``obj`` is re-read by (None: not one of those)."""
    intent = obj.get("id") if kind.startswith("payment_intent.") else (
        obj.get("payment_intent") if kind in REFUND_EVENTS else None)
    return intent if isinstance(intent, str) and intent else None


def _heard(task: asyncio.Task[Any]) -> None:
    """Retrieves a read's outcome, so that an unused read's failure is not reported as unheard."""
    if not task.cancelled():
        task.exception()


def parse(body: bytes) -> dict[str, Any]:
    """The event's envelope, checked enough to store it."""
    try:
        event = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the webhook body is not JSON") from None
    if not (isinstance(event, dict) and isinstance(event.get("id"), str) and isinstance(event.get("type"), str)
            and isinstance(event.get("data"), dict) and isinstance(event["data"].get("object"), dict)
            and 0 < len(event["id"]) <= 64 and len(event["type"]) <= 64):
        raise BadRequest("not a Stripe event (id, type, data.object)")
    if not isinstance(event.get("created"), int):
        event["created"] = 0
    return event


class Inbox:
    """Stores events and acts on them; ``process`` is safe to call concurrently for one event."""

    def __init__(self, payments: Payments) -> None:
        self._payments = payments
        self._tasks: set[asyncio.Task[bool]] = set()

    def signed(self, body: bytes, signature: str | None) -> bool:
        """Whether a delivery carries a valid signature (the admission gate's vouch for its priority slots)."""
        settings = self._payments.settings
        try:
            verify(body, signature, settings.stripe_webhook_secret, tolerance_s=settings.webhook_tolerance_s)
        except BadSignature:
            return False
        return True

    async def receive(self, body: bytes, signature: str | None, *, budget_s: float = 2.0) -> dict[str, Any]:
        """Verifies, stores and (within ``budget_s``) acts on one delivery; the answer for Stripe."""
        settings = self._payments.settings
        verify(body, signature, settings.stripe_webhook_secret, tolerance_s=settings.webhook_tolerance_s)
        event = parse(body)
        paid = paid_intent(event["data"]["object"]) if event["type"] == "payment_intent.succeeded" else None
        settled = await settle(self._payments, event, paid) if paid is not None else None
        if settled is not None and settled.stored:  # a pack paid: stored and credited from the event itself
            return {"received": True, "id": event["id"], "duplicate": False, "processed": True}
        if settled is not None and await self._processed(event["id"]):  # a duplicate, acted on already
            return {"received": True, "id": event["id"], "duplicate": True, "processed": True}
        # Otherwise the inbox's path (a duplicate stored but not acted on yet reads Stripe only if it acts).
        # The intent the act will re-read from Stripe is read while the event is stored (the two
        # round trips overlap); acting still waits for both, and for the row's lock.
        intent = intent_of(event["type"], event["data"]["object"]) if settled is None else None
        read = asyncio.create_task(self._payments.read_intent(intent)) if intent else None
        if read is not None:
            read.add_done_callback(_heard)
        try:
            # One autocommit statement: stored (committed) before anything acts on it.
            async with self._payments.ledger.engine.connect() as conn:
                inserted = await conn.scalar(insert(StripeEvent).values(
                    id=event["id"], type=event["type"], created=event["created"], payload=event)
                    .on_conflict_do_nothing().returning(StripeEvent.id))
        except BaseException:
            if read is not None:
                read.cancel()
            raise
        task = asyncio.create_task(self.process(event["id"], read))
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        try:
            done = await asyncio.wait_for(asyncio.shield(task), budget_s)
        except TimeoutError:
            done = False  # still running; the answer must not wait (Stripe would retry)
        except Exception:
            done = False  # recorded on the event; the sweeper retries
        return {"received": True, "id": event["id"], "duplicate": inserted is None, "processed": done}

    async def _processed(self, event_id: str) -> bool:
        async with self._payments.ledger.engine.connect() as conn:
            return bool(await conn.scalar(select(StripeEvent.processed_at.is_not(None))
                                          .where(StripeEvent.id == event_id)))

    def _finished(self, task: asyncio.Task[bool]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:  # outlived its answer and failed
            log.warning("webhook act failed; the sweeper retries it", exc_info=task.exception())

    async def process(self, event_id: str, read: asyncio.Task[tuple[Intent, list[Refund]]] | None = None) -> bool:
        """Acts on a stored event once: the row is locked while acting (a concurrent delivery skips it)
        and marked processed in the same transaction. True when it is processed (now or before).

        That transaction commits without waiting for its WAL flush (``synchronous_commit`` off): what
        it writes (the mark, a purchase's outbox event) is lost in a crash only together with every
        later commit, and losing it only means the event is acted on again, which changes nothing
        (each effect is keyed). The credits themselves are the ledger's, committed synchronously
        before it; the event was stored synchronously before acting.

        ``read``: the intent the event names, being read from Stripe since the event arrived."""
        try:
            return await self._process(event_id, read)
        finally:
            if read is not None:
                read.cancel()  # unused (a duplicate, an event acted on already): nobody waits for it

    async def _process(self, event_id: str, read: asyncio.Task[tuple[Intent, list[Refund]]] | None) -> bool:
        async with self._payments.sessions() as session, session.begin():
            # SET LOCAL in the same round trip as the lock (set_config runs for the row it returns).
            row = await session.scalar(select(StripeEvent, func.set_config("synchronous_commit", "off", true()))
                                       .where(StripeEvent.id == event_id).with_for_update(skip_locked=True))
            if row is None:
                return False  # another delivery is acting on it right now
            if row.processed_at is not None:
                return True
            try:
                await self._act(row.type, row.payload["data"]["object"], session, read)
            except Exception as exc:
                log.warning("webhook %s (%s) failed: %s", row.id, row.type, exc, exc_info=True)
                row.attempts += 1
                row.error = str(exc)[:1000]
                return False
            row.processed_at = datetime.now(UTC)
            row.attempts += 1
            row.error = ""
            return True

    async def retry_pending(self, *, older_than_s: float = 5.0, limit: int = 100) -> int:
        """Acts on events not processed yet (failed, or cut off by a crash); returns how many it tried."""
        async with self._payments.sessions() as session:
            ids = (await session.scalars(select(StripeEvent.id).where(
                StripeEvent.processed_at.is_(None), StripeEvent.attempts < MAX_ATTEMPTS,
                StripeEvent.received_at < text(f"now() - interval '{float(older_than_s)} seconds'"))
                .order_by(StripeEvent.received_at).limit(limit))).all()
        for event_id in ids:
            await self.process(event_id)
        return len(ids)

    async def _act(self, kind: str, obj: dict[str, Any], session: AsyncSession,
                   read: asyncio.Task[tuple[Intent, list[Refund]]] | None) -> None:
        handler = self._handler(kind, session, read)
        if handler is None:
            log.info("webhook %s stored, nothing to do", kind)
            return
        await handler(obj)

    def _handler(self, kind: str, session: AsyncSession, read: asyncio.Task[tuple[Intent, list[Refund]]] | None,
                 ) -> Callable[[dict[str, Any]], Awaitable[None]] | None:
        """``session``: the inbox's transaction, where a purchase's outbox event is written;
        ``read``: the intent of :func:`intent_of`, being read from Stripe already."""
        payments = self._payments
        if kind.startswith("payment_intent.") or kind in REFUND_EVENTS:
            async def intent(o: dict[str, Any]) -> None:
                # A refund's: credits first if needed, then every refund.
                if (intent := intent_of(kind, o)) is not None:
                    await payments.sync_intent(intent, session, read)
            return intent
        if kind in ("charge.dispute.created", "charge.dispute.funds_withdrawn"):
            return lambda o: payments.dispute(o, won=False)
        if kind in ("charge.dispute.closed", "charge.dispute.funds_reinstated"):
            return lambda o: payments.dispute(o, won=o.get("status") == "won" or kind.endswith("reinstated"))
        if kind.startswith(SUBSCRIPTION_EVENTS):
            async def subscription(o: dict[str, Any]) -> None:
                await payments.mirror(await payments.gateway.get_subscription(o["id"]))
            return subscription
        if kind in INVOICE_EVENTS:
            async def invoice(o: dict[str, Any]) -> None:
                sub = o.get("subscription")
                if isinstance(sub, str):
                    await payments.mirror(await payments.gateway.get_subscription(sub))
            return invoice
        if kind == "checkout.session.completed":
            async def checkout(o: dict[str, Any]) -> None:
                if isinstance(o.get("payment_intent"), str):
                    await payments.sync_intent(o["payment_intent"], session)
                if isinstance(o.get("subscription"), str):
                    await payments.mirror(await payments.gateway.get_subscription(o["subscription"]))
            return checkout
        return None

    async def close(self) -> None:
        await stop_tasks(list(self._tasks))

