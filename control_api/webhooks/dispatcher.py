"""The dispatcher: a task in each API process that sends due deliveries, signed, and reschedules failures.

Claiming is a short transaction: due rows are locked with ``FOR UPDATE SKIP LOCKED`` (two API
processes never take the same row), their attempt count goes up by one and ``next_attempt_at`` moves
to the end of a lease (the timeout and a margin). The attempt is then sent outside any transaction;
its result is written with the attempt number as a guard. A process that dies mid-attempt leaves the
row to be claimed again once the lease ends: delivery is at least once, ids are unique.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_api.webhooks import signing
from control_api.webhooks.metrics import WebhookMetrics
from control_api.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from switchboard.api_sections import WebhookSettings

log = logging.getLogger("switchboard.api.webhooks")

PRUNE_EVERY_S = 3600.0
"""How often a dispatcher deletes events older than ``webhooks.keep_s``."""
LEASE_MARGIN_S = 30.0
"""Added to the timeout: how long a claimed attempt is left alone before another process retries it."""
_DUE = text("SELECT EXISTS (SELECT 1 FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= now())")


@dataclass(frozen=True)
class Claim:
    """One attempt taken by this process."""

    delivery_id: int
    """The delivery row."""
    attempt: int
    """This attempt's number (1 for the first): guards the result's write."""
    endpoint_id: object
    """The endpoint's id."""
    url: str
    """Where to POST."""
    secrets: list[str]
    """Live secrets of the endpoint (two during a rotation)."""
    event_id: str
    """The event's id."""
    event_type: str
    """The event's type."""
    body: bytes
    """The JSON body: id, type, created, data."""
    created: datetime
    """When the event was recorded (retries stop ``retry_for_s`` after it)."""


def backoff_s(settings: WebhookSettings, attempt: int, rand: random.Random) -> float:
    """Delay after failed attempt number ``attempt``: base * 2^(attempt-1), capped, then jittered to
    [50%, 100%] so endpoints that fail together are not retried together."""
    delay = min(settings.backoff_max_s, settings.backoff_base_s * 2 ** min(attempt - 1, 40))
    return delay * (0.5 + rand.random() / 2)


def body_of(event: WebhookEvent) -> bytes:
    payload = {"id": event.id, "type": event.type, "created": int(event.created_at.timestamp()), "data": event.data}
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


class Dispatcher:
    """Sends due deliveries, at most ``settings.concurrency`` at once; ``run`` until cancelled."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: WebhookSettings,
                 metrics: WebhookMetrics | None = None) -> None:
        self._sessions = sessions
        self._settings = settings
        self.metrics = metrics or WebhookMetrics()
        self._rand = random.Random()
        self._inflight: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        bind = sessions.kw.get("bind")
        # Most polls find nothing: they ask with one autocommit statement (no BEGIN/COMMIT, no ORM).
        self._peek = bind.execution_options(isolation_level="AUTOCOMMIT") if bind is not None else None

    def stop(self) -> None:
        """Asks ``run`` to end at its next idle point, once its attempts in flight are written (a cancel
        in the middle of a query would leave a database connection half-used)."""
        self._stopping.set()

    async def run(self) -> None:
        """Until :meth:`stop` (or a cancel): claim, send, write results; a failure is logged and retried."""
        timeout = aiohttp.ClientTimeout(total=self._settings.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            pruned_at = time.monotonic() - PRUNE_EVERY_S + 60  # the first prune a minute after the start
            try:
                await self._wait()  # the app finishes starting before the first query
                while not self._stopping.is_set():
                    try:
                        if time.monotonic() - pruned_at > PRUNE_EVERY_S:
                            pruned_at = time.monotonic()
                            await self.prune()
                        claimed = await self.dispatch_once(http)
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        log.exception("webhook dispatcher failed; retrying")
                        claimed = 0
                    if claimed == 0 or len(self._inflight) >= self._settings.concurrency:
                        await self._wait()
                if self._inflight:  # each ends within the timeout, then writes its result
                    await asyncio.wait(set(self._inflight), timeout=self._settings.timeout_s + LEASE_MARGIN_S)
            finally:
                for task in self._inflight:
                    task.cancel()
                await asyncio.gather(*self._inflight, return_exceptions=True)

    async def _wait(self) -> None:
        """Until ``poll_s`` passes, an attempt ends (a free slot) or :meth:`stop` is called."""
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({stopping, *self._inflight}, timeout=self._settings.poll_s,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()

    async def prune(self) -> int:
        """Deletes events older than ``keep_s`` that have no pending delivery (their deliveries and
        log go with them); returns how many."""
        before = datetime.now(UTC) - timedelta(seconds=self._settings.keep_s)
        pending = select(WebhookDelivery.id).where(WebhookDelivery.event_id == WebhookEvent.id,
                                                   WebhookDelivery.status == "pending")
        async with self._sessions() as session, session.begin():
            gone = await session.scalars(delete(WebhookEvent).where(WebhookEvent.created_at < before,
                                                                    ~pending.exists()).returning(WebhookEvent.id))
            return len(list(gone))

    async def dispatch_once(self, http: aiohttp.ClientSession) -> int:
        """Claims what is due (as many as there are free slots) and starts sending it."""
        free = self._settings.concurrency - len(self._inflight)
        if free <= 0:
            return 0
        if self._peek is not None:
            async with self._peek.connect() as conn:
                if not await conn.scalar(_DUE):
                    return 0
        claims = await self.claim(free)
        for c in claims:
            task = asyncio.create_task(self._send(http, c))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
        return len(claims)

    async def claim(self, limit: int) -> list[Claim]:
        now = datetime.now(UTC)
        lease = now + timedelta(seconds=self._settings.timeout_s + LEASE_MARGIN_S)
        async with self._sessions() as session, session.begin():
            rows = (await session.execute(
                select(WebhookDelivery, WebhookEndpoint, WebhookEvent)
                .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
                .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
                .order_by(WebhookDelivery.next_attempt_at).limit(limit)
                .with_for_update(of=WebhookDelivery, skip_locked=True))).all()
            out = []
            for delivery, endpoint, event in rows:
                delivery.attempts += 1
                delivery.next_attempt_at = lease
                live = [endpoint.secret]
                if endpoint.previous_secret and endpoint.previous_expires_at and endpoint.previous_expires_at > now:
                    live.append(endpoint.previous_secret)
                out.append(Claim(delivery.id, delivery.attempts, endpoint.id, endpoint.url, live, event.id,
                                 event.type, body_of(event), event.created_at))
        return out

    async def _send(self, http: aiohttp.ClientSession, c: Claim) -> None:
        started = time.perf_counter()
        status: int | None = None
        error, outcome = "", "ok"
        headers = {"Content-Type": "application/json", "User-Agent": "Switchboard-Webhooks/1",
                   "Switchboard-Event-Id": c.event_id,
                   signing.HEADER: signing.header(c.secrets, int(time.time()), c.body)}
        try:
            async with http.post(c.url, data=c.body, headers=headers, allow_redirects=False) as resp:
                status = resp.status
                await resp.content.read(4096)  # some of the answer: an endpoint's body is not ours to keep
            if not 200 <= status < 300:
                error, outcome = f"HTTP {status}", "http_error"
        except TimeoutError:
            error, outcome = f"no answer within {self._settings.timeout_s:g} s", "timeout"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            error, outcome = f"{type(exc).__name__}: {exc}"[:500], "error"
        latency_ms = (time.perf_counter() - started) * 1000
        self.metrics.attempts.labels(outcome).inc()
        self.metrics.attempt_seconds.observe(latency_ms / 1000)
        try:
            await self._finish(c, status, error, latency_ms)
        except Exception:  # the lease ends and the attempt is made again: at least once
            log.exception("webhook delivery %s: result not written", c.delivery_id)

    async def _finish(self, c: Claim, status: int | None, error: str, latency_ms: float) -> None:
        now = datetime.now(UTC)
        ok = not error
        values: dict[str, object]
        if ok:
            values = {"status": "delivered", "delivered_at": now}
            self.metrics.delivery_seconds.observe(max(0.0, (now - c.created).total_seconds()))
        elif (now - c.created).total_seconds() >= self._settings.retry_for_s:
            values = {"status": "failed"}
            self.metrics.failed.inc()
        else:
            values = {"next_attempt_at": now + timedelta(seconds=backoff_s(self._settings, c.attempt, self._rand))}
        async with self._sessions() as session, session.begin():
            session.add(WebhookAttempt(delivery_id=c.delivery_id, endpoint_id=c.endpoint_id, event_id=c.event_id,
                                       event_type=c.event_type, attempt=c.attempt, status_code=status,
                                       latency_ms=round(latency_ms, 3), error=error))
            # Only while this attempt is still the latest (a lease that ran out was claimed again).
            await session.execute(update(WebhookDelivery).where(
                WebhookDelivery.id == c.delivery_id, WebhookDelivery.attempts == c.attempt,
                WebhookDelivery.status == "pending").values(**values))
        if not ok:
            log.info("webhook %s to %s failed (attempt %d): %s", c.event_id, c.url, c.attempt, error)
