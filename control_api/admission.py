"""Admission: the API sheds load it cannot serve in time instead of queueing it.

Every ``/api`` request passes one gate before any other work (outermost middleware):

- at most ``max_in_flight`` requests are worked on at once (below the Postgres pool: no request
  ever waits 30 s for a connection and leaves as a 500);
- beyond that, at most ``admission_queue`` requests wait, each for at most ``admission_wait_ms``,
  and one whose turn comes while the loop runs late (below) is refused rather than started late;
- while the event loop runs more than ``lag_shed_ms`` late (requests waiting in kernel buffers and
  the loop's ready list, a queue no counter here sees) and requests are in flight, new requests are
  refused at once;
- routes marked ``priority`` (Stripe's webhook: a refusal there delays a payment by Stripe's retry
  schedule, hours) have ``priority_slots`` of their own beyond ``max_in_flight``: admitted at once,
  never queued behind the others nor refused for lag; when those are taken they pass the gate as
  any request does, so a flood of them is bounded like any other. A route's ``vouch`` (the webhook:
  its signature, checked on the body) decides whether a request may take such a slot: a forged
  one passes the ordinary gate instead, so forgeries cannot keep Stripe's deliveries out.

A refused request gets ``503`` with ``Retry-After`` and a problem+json body, pre-encoded: refusing
costs a fraction of serving. Per-client limits stay in :mod:`control_api.limits` (429).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from switchboard.lag import LoopLag
from switchboard.settings import ApiSettings

PROBLEM_TYPE = "application/problem+json"

Vouch = Callable[[web.Request], Awaitable[bool]]
"""Whether a request of a priority route may take a priority slot (read before the slot is given)."""


class Admission:
    """The gate: a concurrency limit with a short bounded queue, and a loop-lag trip."""

    def __init__(self, *, max_in_flight: int, queue: int, wait_s: float, lag_limit_s: float,
                 retry_after_s: float, lag: LoopLag | None = None, priority_slots: int = 0) -> None:
        self.max_in_flight = max_in_flight
        self.priority_slots = priority_slots
        self.priority_in_flight = 0
        """Requests of priority routes in their own slots (not counted in ``in_flight``)."""
        self._priority: dict[web.AbstractRoute, Vouch | None] = {}
        self._queue_max = queue
        self._wait_s = wait_s
        self._lag_limit_s = lag_limit_s
        self.lag = lag or LoopLag()
        self.in_flight = 0
        self.shed = 0
        """Requests refused since start."""
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._retry_after = str(max(1, math.ceil(retry_after_s)))
        self._body = json.dumps({"type": "about:blank", "title": "Service unavailable", "status": 503,
                                 "detail": "the server is at capacity; retry after Retry-After seconds",
                                 "retry_after": int(self._retry_after)}).encode()

    @classmethod
    def from_settings(cls, s: ApiSettings) -> Admission:
        return cls(max_in_flight=s.max_in_flight, queue=s.admission_queue, wait_s=s.admission_wait_ms / 1e3,
                   lag_limit_s=s.lag_shed_ms / 1e3, retry_after_s=s.overload_retry_after_s,
                   priority_slots=s.admission_priority_slots)

    def prioritize(self, routes: Mapping[web.AbstractRoute, Vouch | None]) -> None:
        """Gives ``routes`` the priority slots, each request that its vouch (if any) accepts."""
        self._priority.update(routes)

    def refusal(self) -> web.Response:
        self.shed += 1
        return web.Response(status=503, body=self._body, content_type=PROBLEM_TYPE,
                            headers={"Retry-After": self._retry_after})

    async def enter(self) -> bool:
        """Takes a slot (waiting briefly if the queue has room); False: refuse this request."""
        if self.in_flight and self.lag.now() > self._lag_limit_s:
            return False  # (a late loop with none of our requests in it is not our backlog)
        if self.in_flight < self.max_in_flight and not self._waiters:
            self.in_flight += 1
            return True
        if len(self._waiters) >= self._queue_max:
            return False
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, self._wait_s)
        except TimeoutError:
            self._remove(waiter)
            return False
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.leave()  # a slot was handed over just before the cancel: pass it on
            else:
                self._remove(waiter)
            raise
        # leave() handed its slot over (in_flight already counts this request). Shed it still if the
        # loop fell behind while it waited: it would start late and run late, the tail it must not add.
        if self.lag.now() > self._lag_limit_s:
            self.leave()
            return False
        return True

    def leave(self) -> None:
        """Gives the slot to the oldest live waiter, or frees it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.in_flight -= 1

    def _remove(self, waiter: asyncio.Future[None]) -> None:
        try:
            self._waiters.remove(waiter)
        except ValueError:
            pass

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        route = request.match_info.route
        if self.priority_in_flight < self.priority_slots and route in self._priority:
            self.priority_in_flight += 1  # held while the vouch reads the body: the slots bound that work too
            try:
                vouch = self._priority[route]
                if vouch is None or await vouch(request):
                    return await handler(request)  # type: ignore[no-any-return]
            finally:
                self.priority_in_flight -= 1
        if not await self.enter():
            return self.refusal()
        try:
            return await handler(request)  # type: ignore[no-any-return]
        finally:
            self.leave()


ADMISSION = web.AppKey("admission", Admission)


def install_admission(app: web.Application, settings: ApiSettings) -> Admission:
    """Puts the gate in front of every other middleware of ``app`` and runs its lag probe."""
    admission = Admission.from_settings(settings)
    app[ADMISSION] = admission
    app.middlewares.insert(0, admission.middleware)

    async def probe(app: web.Application) -> AsyncIterator[None]:
        admission.lag.start()
        yield
        admission.lag.close()

    app.cleanup_ctx.append(probe)
    return admission
