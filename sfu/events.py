"""Event sinks: where tap opened/closed facts go."""

from __future__ import annotations

import logging

import redis.asyncio as aioredis

from switchboard.events import TapEvent, encode
from switchboard.keyspace import EVENTS_STREAM

log = logging.getLogger(__name__)


class RedisEventSink:
    """XADD each event to ``switchboard.keyspace.EVENTS_STREAM`` in the shared schema
    (:func:`switchboard.events.encode`, which the control API decodes)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self.lost = 0

    async def emit(self, event: TapEvent) -> None:
        try:
            await self._redis.xadd(EVENTS_STREAM, encode(event))  # type: ignore[arg-type]
        except aioredis.RedisError:
            self.lost += 1
            log.exception("%s event of %s in %s not written", event.type, event.moderator, event.room)


class MemoryEventSink:
    """Keeps events in a list (unit tests, and a node without Redis)."""

    def __init__(self) -> None:
        self.events: list[TapEvent] = []

    async def emit(self, event: TapEvent) -> None:
        self.events.append(event)
