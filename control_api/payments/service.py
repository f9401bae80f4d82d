"""Payments: the one object the routes, the webhook inbox and the commands use. It turns Stripe's
facts (a PaymentIntent succeeded, a refund, a subscription's status) into ledger operations and
account state, each keyed so that doing it twice, or in any order, leaves one effect."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import Row, case, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_api.errors import NotFound
from control_api.ledger.book import Ledger
from control_api.ledger.types import Spend
from control_api.models import Account
from control_api.payments.models import Purchase, StripeCustomer, StripeRefund, Subscription
from control_api.payments.types import PREMIUM_STATUSES, Gateway, Intent, Refund, Sub
from control_api.realtime import Realtime
from control_api.webhooks import outbox as webhooks
from switchboard.keyspace import SANCTIONS_CHANNEL, premium_tier
from switchboard.settings import CreditPack, PaymentsSettings

log = logging.getLogger("switchboard.api.payments")


@dataclass(frozen=True)
class PurchaseStarted:
    intent: Intent
    pack: CreditPack
    credited: bool
    """True when the card went through at once and the credits are in the wallet already."""


class Payments:
    """Built in the API's cleanup context (``payments.context``); ``gateway`` None: payments off."""

    def __init__(self, settings: PaymentsSettings, gateway: Gateway | None, ledger: Ledger,
                 sessions: async_sessionmaker, redis: Redis, realtime: Realtime) -> None:
        self.settings = settings
        self._gateway = gateway
        self.ledger = ledger
        self.sessions = sessions
        self._redis = redis
        self._realtime = realtime
        self.packs = {p.name: p for p in settings.credit_packs}

    @property
    def gateway(self) -> Gateway:
        if self._gateway is None:
            # Not a 5xx: nothing failed, the feature is absent here (as an unknown route would be).
            raise NotFound("payments are off on this server (payments.stripe_api_key is not set)")
        return self._gateway

    # --- spending ------------------------------------------------------------------------------

    async def spend_on(self, op_id: str, payer: uuid.UUID, creator: uuid.UUID, amount: int, *, kind: str,
                       meta: dict[str, Any] | None = None) -> Spend:
        """A spend on a creator as every feature makes it (tips; PPV, tickets, gifts): the creator must
        exist and neither may have blocked the other (NotFound), then :meth:`Ledger.spend`; the
        creator's pages hear of new earnings. ``op_id`` names the fact, so a retry charges once."""
        # The creator exists, is not deleted, no block either way: checked by the spend's own statement.
        spend = await self.ledger.spend(op_id, payer, creator, amount, kind=kind, meta=meta, creator_visible=True)
        if not spend.replayed and spend.creator_amount:
            await self._realtime.push(creator, {"type": "earnings", "reason": kind, "credits": spend.creator_amount})
        return spend

    async def notify(self, user: uuid.UUID, message: dict[str, Any]) -> None:
        """Tells the user's pages (wallet or earnings moved): best effort."""
        await self._realtime.push(user, message)

    def notify_soon(self, user: uuid.UUID, message: dict[str, Any]) -> None:
        """:meth:`notify` without waiting for it (it leaves with the loop's next Redis write)."""
        self._realtime.send(user, message)

    # --- customers -----------------------------------------------------------------------------

    async def customer_for(self, user: uuid.UUID) -> str:
        """The user's Stripe customer, made on first purchase (one per user: the idempotency key and
        the unique row agree even when two first purchases race)."""
        async with self.sessions() as session:
            found = await session.scalar(select(StripeCustomer.customer_id).where(StripeCustomer.account_id == user))
            email = await session.scalar(select(Account.email).where(Account.id == user))
        if found:
            return str(found)
        if email is None:
            raise NotFound("no such account")
        customer = await self.gateway.create_customer(str(user), email, idempotency_key=f"customer:{user}")
        async with self.sessions() as session, session.begin():
            await session.execute(insert(StripeCustomer).values(account_id=user, customer_id=customer)
                                  .on_conflict_do_nothing())
            return str(await session.scalar(select(StripeCustomer.customer_id)
                                            .where(StripeCustomer.account_id == user)))

    async def _user_of_customer(self, customer: str) -> uuid.UUID | None:
        async with self.sessions() as session:
            return await session.scalar(select(StripeCustomer.account_id).where(StripeCustomer.customer_id == customer))

    # --- credit packs ----------------------------------------------------------------------------

    def pack(self, name: str) -> CreditPack:
        pack = self.packs.get(name)
        if pack is None:
            raise NotFound(f"no credit pack {name!r}")
        return pack

    async def start_purchase(self, user: uuid.UUID, pack_name: str, *, payment_method: str | None,
                             key: str) -> PurchaseStarted:
        """A PaymentIntent for a pack. With a card (``payment_method``) it is confirmed now: it
        succeeds (credited at once), needs 3-D Secure (``requires_action``: the page calls Stripe.js
        ``confirmCardPayment``; the webhook credits), or is declined (CardDeclined). ``key`` makes a
        retry of the same request reuse the same Stripe objects."""
        pack = self.pack(pack_name)
        gateway = self.gateway
        customer = await self.customer_for(user)
        if payment_method:
            await gateway.attach_card(customer, payment_method)
        intent = await gateway.create_intent(
            customer=customer, amount=pack.price, currency=self.settings.currency, payment_method=payment_method,
            metadata={"user_id": str(user), "pack": pack.name, "credits": str(pack.credits)},
            idempotency_key=f"pack:{user}:{key}")
        if intent.status == "succeeded":
            credited = await self.fulfil(intent)  # records the purchase too
        else:
            await self._record_purchase(intent)
            credited = False
        return PurchaseStarted(intent, pack, credited)

    @staticmethod
    def purchase_of(intent: Intent) -> dict[str, Any] | None:
        """The purchase row an intent stands for (its metadata says who and what); None: not a pack of ours."""
        meta = intent.metadata
        if "user_id" not in meta or "credits" not in meta:
            return None
        return {"intent_id": intent.id, "account_id": uuid.UUID(meta["user_id"]), "pack": meta.get("pack", ""),
                "credits": int(meta["credits"]), "amount": intent.amount, "currency": intent.currency,
                "status": intent.status}

    async def _record_purchase(self, intent: Intent) -> Row[Any] | None:
        """Upserts the purchase row from the intent and returns it, in one autocommit statement
        (one round trip: it is on the webhook's path)."""
        values = self.purchase_of(intent)
        if values is None:
            return None
        stmt = insert(Purchase).values(**values)
        # A purchase already seen succeeding stays so (statuses arrive in any order). The row is
        # always updated (to itself, then) so that RETURNING always has it.
        kept = Purchase.status == "succeeded"
        stmt = stmt.on_conflict_do_update(index_elements=[Purchase.intent_id], set_={
            "status": case((kept, Purchase.status), else_=stmt.excluded.status),
            "updated_at": case((kept, Purchase.updated_at), else_=stmt.excluded.updated_at)})
        async with self.ledger.engine.begin() as conn:
            return (await conn.execute(stmt.returning(*Purchase.__table__.c))).one()

    async def fulfil(self, intent: Intent, outbox: AsyncSession | None = None) -> bool:
        """Credits a succeeded pack intent once (the ledger id is the intent's). True: credited now.

        Each step is keyed, so a retried webhook redoes them all safely: the purchase row and the
        credits at once (both from the intent, neither needs the other; both are committed before
        anything reads them: a refund re-reads the intent and comes here first), then the outbox
        event (committed on its own, or with ``outbox``: the webhook inbox's transaction, which marks
        its event processed). The wallet push is not waited for (best effort)."""
        values = self.purchase_of(intent) if intent.status == "succeeded" else None
        if values is None:
            return False
        recorded, deposited = await asyncio.gather(
            self._record_purchase(intent),
            self.ledger.deposit(f"purchase:{intent.id}", values["account_id"], values["credits"],
                                meta={"intent": intent.id, "pack": values["pack"], "paid": values["amount"],
                                      "currency": values["currency"]}),
            return_exceptions=True)  # neither is left running unheard when the other fails
        for outcome in (recorded, deposited):
            if isinstance(outcome, BaseException):
                raise outcome
        assert isinstance(recorded, Row) and isinstance(deposited, bool)
        # After the ledger's commit, replay-safe (its id is the purchase's).
        data, event_id = webhooks.purchase_data(recorded), f"evt_purchase_{intent.id}"
        if outbox is None:
            await webhooks.record_now(self.ledger.engine, "credits_purchased", data, event_id=event_id)
        else:
            await outbox.scalar(webhooks.recording("credits_purchased", data, event_id=event_id))
        if deposited:
            self.notify_soon(values["account_id"], {"type": "wallet", "reason": "purchase",
                                                    "credits": values["credits"]})
        return deposited

    async def read_intent(self, intent_id: str) -> tuple[Intent, list[Refund]]:
        """An intent and its refunds as Stripe has them now, read at once (one round trip's wait)."""
        intent, refunds = await asyncio.gather(self.gateway.get_intent(intent_id), self.gateway.refunds_of(intent_id))
        return intent, refunds

    async def sync_intent(self, intent_id: str, outbox: AsyncSession | None = None,
                          read: Awaitable[tuple[Intent, list[Refund]]] | None = None) -> None:
        """Re-reads an intent from Stripe and acts on what it is now (webhooks never trust order).
        Its refunds are read at the same time and reversed only after the purchase is credited; a
        refund made after that read comes with its own event. ``outbox``: see :meth:`fulfil`;
        ``read``: :meth:`read_intent` of this intent, started earlier (the webhook starts it as the
        event arrives, while it stores it)."""
        intent, refunds = await (read if read is not None else self.read_intent(intent_id))
        if intent.status == "succeeded":
            await self.fulfil(intent, outbox)
            await self.sync_refunds(intent_id, refunds)
        else:
            await self._record_purchase(intent)

    # --- refunds and disputes -------------------------------------------------------------------------

    async def sync_refunds(self, intent_id: str, refunds: list[Refund] | None = None) -> None:
        """Reverses the credits of every refund of a purchase not yet reversed (each once, by its id);
        ``refunds``: the purchase's refunds as just read from Stripe (None: read them now)."""
        if refunds is not None and not refunds:
            return  # the common case: nothing refunded, nothing to read
        async with self.sessions() as session:
            purchase = await session.get(Purchase, intent_id)
        if purchase is None:
            return
        for refund in refunds if refunds is not None else await self.gateway.refunds_of(intent_id):
            if refund.status in ("succeeded", "pending"):
                await self.reverse(purchase, refund.id, refund.amount, kind="refund")

    async def reverse(self, purchase: Purchase, ref: str, amount: int, *, kind: str) -> None:
        """Takes back the credits ``amount`` (minor units) of ``purchase`` bought; the last reversal
        takes whatever rounding left, so a full refund takes back exactly what was credited."""
        if not await self.ledger.transfers(f"purchase:{purchase.intent_id}"):
            # Never take back what was not credited (a refund seen before its payment): the caller
            # re-reads the intent first; failing here leaves a webhook event to be retried.
            raise RuntimeError(f"purchase {purchase.intent_id} is not credited yet")
        async with self.sessions() as session, session.begin():
            if await session.get(StripeRefund, ref) is not None:
                return
            row = await session.get(Purchase, purchase.intent_id, with_for_update=True)
            assert row is not None
            before = [r for r in (await session.scalars(select(StripeRefund)
                                                      .where(StripeRefund.intent_id == row.intent_id))).all()]
            refunded = sum(r.amount for r in before) + amount
            taken = sum(r.credits for r in before)
            credits = row.credits - taken if refunded >= row.amount else row.credits * amount // row.amount
            if credits > 0:
                await self.ledger.take_back(f"{kind}:{ref}", row.account_id, credits,
                                            kind=kind, meta={"intent": row.intent_id, "amount": amount})
            session.add(StripeRefund(id=ref, intent_id=row.intent_id, amount=amount, credits=credits))
            await webhooks.record(session, "credits_refunded", webhooks.purchase_data(row, kind=kind, refunded=amount,
                                                                                     credits_taken=credits))
            row.refunded = min(refunded, row.amount)
        await self._realtime.push(purchase.account_id, {"type": "wallet", "reason": kind, "credits": -credits})

    async def dispute(self, obj: Any, *, won: bool) -> None:
        """A dispute on a pack's charge: credits taken back when opened, given back when won."""
        intent_id, dispute_id, amount = obj.get("payment_intent"), obj.get("id"), int(obj.get("amount") or 0)
        if not intent_id or not dispute_id or amount <= 0:
            return
        await self.sync_intent(intent_id)  # credited first, whatever order the events came in
        async with self.sessions() as session:
            purchase = await session.get(Purchase, intent_id)
        if purchase is None:
            return
        await self.reverse(purchase, dispute_id, amount, kind="dispute")
        if won:
            async with self.sessions() as session:
                row = await session.get(StripeRefund, dispute_id)
            if row is not None and row.credits:
                await self.ledger.deposit(f"dispute-won:{dispute_id}", purchase.account_id, row.credits,
                                          kind="dispute_won", meta={"intent": intent_id})

    # --- premium ---------------------------------------------------------------------------------------

    async def mirror(self, sub: Sub) -> bool | None:
        """Stores the subscription as Stripe says it is now and sets the account's premium from all its
        subscriptions; a change is published at once. Returns the premium flag (None: not ours)."""
        user = uuid.UUID(sub.metadata["user_id"]) if "user_id" in sub.metadata else await self._user_of_customer(
            sub.customer)
        if user is None:
            log.warning("subscription %s of an unknown customer ignored", sub.id)
            return None
        async with self.sessions() as session, session.begin():
            stmt = insert(Subscription).values(id=sub.id, account_id=user, status=sub.status, plan=sub.plan,
                                               current_period_end=sub.current_period_end,
                                               cancel_at_period_end=sub.cancel_at_period_end)
            await session.execute(stmt.on_conflict_do_update(index_elements=[Subscription.id], set_={
                "status": stmt.excluded.status, "plan": stmt.excluded.plan,
                "current_period_end": stmt.excluded.current_period_end,
                "cancel_at_period_end": stmt.excluded.cancel_at_period_end, "updated_at": stmt.excluded.updated_at}))
            account = await session.get(Account, user, with_for_update=True)
            if account is None:
                return None
            statuses = (await session.scalars(select(Subscription.status)
                                              .where(Subscription.account_id == user))).all()
            premium = any(s in PREMIUM_STATUSES for s in statuses)
            changed = account.premium != premium
            if changed:
                await session.execute(update(Account).where(Account.id == user).values(premium=premium))
                await webhooks.record(session, "premium_changed", {"user_id": str(user), "premium": premium})
        if changed:
            await self.publish_premium(user, premium)
        return premium

    async def publish_premium(self, user: uuid.UUID, premium: bool) -> None:
        """Marks the rate-limit tier (``keyspace.premium_tier``), tells every node (SANCTIONS_CHANNEL
        ``premium``) and the user's pages (``premium`` on the user's channel). Committed already: a
        Redis failure is logged; the next ws token carries it."""
        try:
            await self._redis.set(premium_tier(str(user)), "1" if premium else "0")
            await self._redis.publish(SANCTIONS_CHANNEL, json.dumps({"user": str(user), "kind": "premium",
                                                                     "premium": premium}))
        except RedisError:
            log.error("premium change not published", extra={"account": str(user)}, exc_info=True)
        await self._realtime.push(user, {"type": "premium", "premium": premium})


PAYMENTS = web.AppKey("payments", Payments)
