"""Payments inside the API app: built in its cleanup context after the engine and Redis, with one
background sweeper (lapsed holds voided, unfinished webhook events retried); closed in reverse."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import create_async_engine

from control_api.ledger.book import Ledger
from control_api.payments.routes import INBOX
from control_api.payments.service import PAYMENTS, Payments
from control_api.payments.stripe_gateway import StripeGateway
from control_api.payments.types import Gateway, GatewayDown, GatewayRefused
from control_api.payments.webhooks import Inbox
from control_api.services import SERVICES
from switchboard.settings import PaymentsSettings
from switchboard.tasks import stop_task

log = logging.getLogger("switchboard.api.payments")


def open_gateway(settings: PaymentsSettings) -> Gateway | None:
    """Stripe (or localstripe at ``stripe_api_base``); None when no key is configured."""
    if not settings.stripe_api_key:
        return None
    return StripeGateway(settings.stripe_api_key, api_base=settings.stripe_api_base,
                         timeout_s=settings.stripe_timeout_s, retries=settings.stripe_retries)


async def sweep(payments: Payments, inbox: Inbox, every_s: float) -> None:
    """Forever: void lapsed holds, retry webhook events not yet processed. Errors are logged."""
    while True:
        await asyncio.sleep(every_s)
        try:
            expired = await payments.ledger.expire_holds()
            if expired:
                log.info("voided %d lapsed holds", expired)
            await inbox.retry_pending()
        except Exception:
            log.exception("payments sweep failed; next round retries")


def context(settings: PaymentsSettings, engine_key: web.AppKey[Any],
            gateway: Callable[[PaymentsSettings], Gateway | None] = open_gateway,
            ) -> Callable[[web.Application], AsyncIterator[None]]:
    async def payments_ctx(app: web.Application) -> AsyncIterator[None]:
        services = app[SERVICES]
        # The ledger's own pool: autocommit and no pre-ping, so one operation is one round trip
        # (a connection dropped by a Postgres restart fails one call and is then replaced).
        engine = create_async_engine(app[engine_key].url, pool_size=20, max_overflow=10, pool_pre_ping=False,
                                     pool_recycle=600)
        ledger = Ledger(engine, creator_share_percent=settings.creator_share_percent)
        stripe = gateway(settings)
        payments = Payments(settings, stripe, ledger, services.sessions, services.redis, services.realtime)
        inbox = Inbox(payments)
        app[PAYMENTS], app[INBOX] = payments, inbox
        if stripe is not None:
            try:
                await stripe.ensure_plan(settings.premium_plan, settings.premium_price, settings.currency, "Premium")
            except (GatewayDown, GatewayRefused) as exc:
                log.error("the premium plan could not be checked in Stripe (%s); subscribing fails until it can", exc)
        task = asyncio.create_task(sweep(payments, inbox, settings.hold_sweep_s))
        try:
            yield
        finally:
            await stop_task(task)
            await inbox.close()
            if stripe is not None:
                await stripe.close()
            await ledger.close()  # the batch being written commits (or fails) before the pool goes
            await engine.dispose()

    return payments_ctx
