"""The API's side of the billing stream (:mod:`switchboard.paid`): paid-call minutes held, posted and
voided as nodes ask, and the refunds of a paid show that ended too soon.

Delivery is at least once (a consumer group; entries acknowledged after they are handled; entries
of a consumer that died are claimed after ``claim_idle_ms``). Every effect is a ledger operation
with an id derived from the request (``call:<call_id>:<minute>``), so a replay changes nothing.
Billing rule: per started minute (docs/payments.md).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from control_api.ledger.types import InsufficientCredits, TransferConflict, UnknownTransfer
from control_api.paid_models import CreatorPrice
from control_api.payments.service import PAYMENTS, Payments
from control_api.services import SERVICES
from control_api.stream_group import StreamGroup
from control_api.tickets import refund_show
from switchboard.paid import BILLING_GROUP, BILLING_STREAM, BillingEntry, call_meter, meter_reply
from switchboard.redis_client import atomic_pipeline, text
from switchboard.tasks import stop_task

log = logging.getLogger("switchboard.api.billing")

REPLY_TTL_S = 60
MAX_HOLD_S = 6 * 3600


def _int(raw: Any, default: int = 0) -> int:
    try:
        return int(raw) if raw is not None else default
    except ValueError:
        return default


class Billing(StreamGroup):
    """Consumes the billing stream in the ``control_api`` group."""

    def __init__(self, payments: Payments, redis: Redis, *, name: str | None = None,
                 claim_idle_ms: int = 30_000) -> None:
        super().__init__(redis, BILLING_STREAM, BILLING_GROUP, name=name, claim_idle_ms=claim_idle_ms, block_ms=1000)
        self._payments = payments

    async def handle_all(self, entries: list[Any]) -> int:
        done = 0
        for entry_id, fields in entries:
            if fields is not None:
                try:
                    await self.handle(fields)
                except Exception:
                    # Left pending: handled again later (every effect is idempotent by its ledger id).
                    log.exception("billing entry failed; it stays pending")
                    continue
            await self.ack(entry_id)
            done += 1
        return done

    async def handle(self, fields: dict[Any, Any]) -> None:
        try:
            entry = BillingEntry.decode(fields)
        except (ValueError, TypeError, UnicodeDecodeError):
            log.warning("dropping a malformed billing entry")
            return
        if entry.op == "hold":
            await self._hold(entry)
        elif entry.op == "post":
            await self._settle(entry.call, entry.minute, post=True)
        elif entry.op == "end":
            await self._end(entry)
        else:
            window = self._payments.settings.ticket_refund_window_s
            await refund_show(self._payments, entry.show_id, entry.started_ms, entry.ended_ms, window)

    async def _reply(self, call_id: str, outcome: str) -> None:
        async with atomic_pipeline(self._redis) as pipe:
            pipe.rpush(meter_reply(call_id), outcome)
            pipe.expire(meter_reply(call_id), REPLY_TTL_S)
            await pipe.execute()

    async def _hold(self, entry: BillingEntry) -> None:
        """Holds one minute; on success ``paid_until_ms`` moves on (once the call started). Minute 1
        fixes the call's price (the callee's price now) and answers the waiting node."""
        meter, first = call_meter(entry.call), entry.minute == 1
        fields = await self._redis.hgetall(meter)
        if not fields.get(b"caller") or fields.get(b"ended"):
            if first:
                await self._reply(entry.call, "error")
            return
        try:
            caller, callee = uuid.UUID(text(fields[b"caller"])), uuid.UUID(text(fields[b"callee"]))
        except (KeyError, ValueError):
            log.warning("a paid call's meter names no users: not billed", extra={"call": entry.call})
            if first:
                await self._reply(entry.call, "error")
            return
        try:
            if first:
                async with self._payments.sessions() as session:
                    row = await session.get(CreatorPrice, callee)
                price = row.call_price if row is not None else 0
                if price <= 0:
                    await self._redis.delete(meter)
                    await self._reply(entry.call, "free")
                    return
                await self._redis.hset(meter, "price", price)
            else:
                price = _int(fields.get(b"price"))
            timeout = min(max(entry.timeout_s, 1.0), MAX_HOLD_S)
            await self._payments.ledger.hold(f"call:{entry.call}:{entry.minute}", caller, callee, price,
                                             timeout_s=timeout, kind="call_minute",
                                             meta={"call": entry.call, "minute": entry.minute})
        except InsufficientCredits:
            if first:
                await self._reply(entry.call, "insufficient_credits")
            return  # not extended: the node ends the call when paid_until passes
        except Exception:
            if first:
                await self._reply(entry.call, "error")
            raise
        held = max(_int(await self._redis.hget(meter, "held")), entry.minute)
        mapping: dict[str, int] = {"held": held}
        started, minute_ms = await self._redis.hmget(meter, ["started_ms", "minute_ms"])
        if started is not None:
            mapping["paid_until_ms"] = _int(started) + held * _int(minute_ms)
        await self._redis.hset(meter, mapping=mapping)  # type: ignore[arg-type]
        if first:
            await self._reply(entry.call, "ok")

    async def _settle(self, call_id: str, minute: int, *, post: bool) -> None:
        op_id = f"call:{call_id}:{minute}"
        try:
            if post:
                await self._payments.ledger.post(op_id)
            else:
                await self._payments.ledger.void(op_id)
        except (UnknownTransfer, TransferConflict) as exc:
            log.info("paid call minute left as it is: %s", exc)

    async def _end(self, entry: BillingEntry) -> None:
        """Posts every held minute that started, voids the others (per started minute)."""
        meter = call_meter(entry.call)
        held = _int(await self._redis.hget(meter, "held"))
        await self._redis.hset(meter, "ended", 1)
        await self._redis.expire(meter, REPLY_TTL_S)
        for minute in range(1, held + 1):
            await self._settle(entry.call, minute, post=minute <= entry.minutes)


BILLING = web.AppKey("billing", Billing)


def context(consume: bool) -> Callable[[web.Application], AsyncIterator[None]]:
    """Runs the billing consumer in this process (when it consumes streams at all)."""

    async def billing_ctx(app: web.Application) -> AsyncIterator[None]:
        payments = app[PAYMENTS]
        billing = Billing(payments, app[SERVICES].redis)
        app[BILLING] = billing
        task = asyncio.create_task(billing.run()) if consume else None
        try:
            yield
        finally:
            if task is not None:
                await stop_task(task)

    return billing_ctx
