"""The meter of paid calls on a node: it asks the control API for each minute's hold and ends the
call when the paid time runs out. It never touches Postgres: requests go on the billing stream and
the API answers in Redis (:mod:`switchboard.paid`).

Billing rule: **per started minute**. Minute 1 is held before the call rings; minute ``k + 1`` is
held ``lead`` seconds before minute ``k`` ends (the API then moves ``paid_until_ms`` one minute on);
minute ``k`` is posted when it ends; at hangup every held minute that started is posted and the
rest voided. When ``paid_until_ms`` passes without an extension (the caller's credits ran out), the
node that accepted the call ends it on both sides with reason ``insufficient_credits`` within
:data:`GRACE_S` plus one poll.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from signaling.errors import PaymentRequired, Unavailable
from switchboard import redis_client
from switchboard.ids import UserId
from switchboard.paid import BILLING_STREAM, METER_TTL_S, BillingEntry, call_meter, call_price, meter_reply
from switchboard.redis_client import text
from switchboard.tasks import stop_tasks

log = logging.getLogger("switchboard.signaling.meter")

GRACE_S = 0.5
"""How long after ``paid_until_ms`` the node waits for a late extension before it ends the call."""
POLL_S = 0.2
"""How often the node looks at ``paid_until_ms`` during that grace."""
HOLD_SLACK_S = 30.0
"""Extra life of every hold beyond the time it must cover: the API or the node may be slow, never forever."""
ENDED = "insufficient_credits"
"""The ``call.ended`` reason when the caller's credits ran out."""

EndCall = Callable[[str, str], Awaitable[bool]]


def _now_ms() -> int:
    return int(time.time() * 1000)


class CallMeter:
    """Paid calls of one node: the first hold before ringing, the minute loop of calls accepted here."""

    def __init__(self, redis: aioredis.Redis, minute_s: float, hold_wait_s: float, ring_timeout_s: float) -> None:
        self._redis = redis
        self.minute_s = minute_s
        self._hold_wait_s = hold_wait_s
        self._ring_timeout_s = ring_timeout_s
        self._loops: dict[str, asyncio.Task[None]] = {}
        self._end_call: EndCall | None = None

    def on_exhausted(self, end_call: EndCall) -> None:
        """``end_call(call_id, reason)`` ends a call on both sides (the call book's)."""
        self._end_call = end_call

    @property
    def lead_s(self) -> float:
        """How long before a minute ends the next one is held."""
        return min(self.minute_s / 3, 10.0)

    async def close(self) -> None:
        await stop_tasks(list(self._loops.values()))
        self._loops.clear()

    async def _ask(self, entry: BillingEntry) -> None:
        await self._redis.xadd(BILLING_STREAM, entry.encode())  # type: ignore[arg-type]

    async def price(self, callee: UserId) -> int:
        """The callee's price per minute as the API mirrors it (0: a free call)."""
        raw = await self._redis.get(call_price(callee))
        try:
            return max(int(raw), 0) if raw is not None else 0
        except ValueError:
            return 0

    async def open(self, call_id: str, caller: UserId, callee: UserId) -> int:
        """Holds minute 1 (before the call rings). Returns the price per minute the API fixed for this
        call (0: free after all). PaymentRequired: the caller cannot pay a minute; Unavailable: the
        API did not answer in time (nothing stays held: the call's ``end`` voids it)."""
        meter, reply = call_meter(call_id), meter_reply(call_id)
        async with redis_client.atomic_pipeline(self._redis) as pipe:
            pipe.delete(reply)
            pipe.hset(meter, mapping={"caller": caller, "callee": callee, "minute_ms": int(self.minute_s * 1000)})
            pipe.expire(meter, METER_TTL_S)
            await pipe.execute()
        timeout = self._ring_timeout_s + 2 * self.minute_s + HOLD_SLACK_S
        await self._ask(BillingEntry("hold", call=call_id, minute=1, timeout_s=timeout))
        answer = await self._redis.blpop([reply], timeout=self._hold_wait_s)
        outcome = text(answer[1]) if answer else None
        if outcome == "ok":
            raw = await self._redis.hget(meter, "price")
            return int(raw or 0)
        await self.ended(call_id)
        if outcome == "free":
            return 0
        if outcome == ENDED:
            raise PaymentRequired("this call costs credits per minute and your wallet cannot pay the first one")
        raise Unavailable("payments did not answer: try the call again")

    async def started(self, call_id: str) -> None:
        """The call was accepted on this node: paid time runs from now; this node drives its minutes."""
        meter = call_meter(call_id)
        now = _now_ms()
        held = int(await self._redis.hget(meter, "held") or 1)
        await self._redis.hset(meter, mapping={"started_ms": now,
                                               "paid_until_ms": now + held * int(self.minute_s * 1000)})
        self._loops[call_id] = asyncio.get_running_loop().create_task(self._run(call_id, now),
                                                                       name=f"meter-{call_id}")

    async def _run(self, call_id: str, started_ms: int) -> None:
        minute_ms = int(self.minute_s * 1000)
        k = 1
        try:
            while True:
                boundary = started_ms + k * minute_ms
                await asyncio.sleep(max(0.0, (boundary - _now_ms()) / 1000 - self.lead_s))
                await self._ask(BillingEntry("hold", call=call_id, minute=k + 1,
                                             timeout_s=2 * self.minute_s + HOLD_SLACK_S))
                await asyncio.sleep(max(0.0, (boundary - _now_ms()) / 1000))
                await self._ask(BillingEntry("post", call=call_id, minute=k))
                while int(await self._redis.hget(call_meter(call_id), "paid_until_ms") or 0) <= _now_ms():
                    if _now_ms() >= boundary + GRACE_S * 1000:
                        self._loops.pop(call_id, None)
                        if self._end_call is not None:
                            await self._end_call(call_id, ENDED)
                        return
                    await asyncio.sleep(POLL_S)
                k += 1
        except asyncio.CancelledError:
            raise
        except Exception:
            # Redis lost: the call goes on unmetered here; its holds lapse by themselves.
            log.exception("paid call meter failed", extra={"call": call_id})

    def stop(self, call_id: str) -> None:
        """The call ended (seen on this node): its minute loop stops."""
        task = self._loops.pop(call_id, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def ended(self, call_id: str) -> None:
        """The call ended (moved here): tells the API how many minutes started (it posts those held
        and voids the rest). Nothing for a free call."""
        self.stop(call_id)
        fields = await self._redis.hmget(call_meter(call_id), ["caller", "started_ms", "minute_ms"])
        if fields[0] is None:
            return
        minutes = 0
        if fields[1] is not None:
            elapsed = _now_ms() - int(fields[1])
            minutes = max(1, math.ceil(elapsed / max(int(fields[2] or 1), 1)))
        try:
            await self._ask(BillingEntry("end", call=call_id, minutes=minutes))
        except aioredis.RedisError as exc:
            log.warning("a paid call's end was not sent (its holds lapse)", extra={"call": call_id,
                                                                                 "error": str(exc)})
