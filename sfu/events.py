"""Event sinks: where tap opened/closed facts go."""

from __future__ import annotations

import logging

import redis.asyncio as aioredis

from sfu.types import SfuEvent
from switchboard.keyspace import EVENTS_STREAM

log = logging.getLogger(__name__)


def event_fields(event: SfuEvent) -> dict[str, str]:
    """The flat string fields of a stream entry (the control API reads these names)."""
    return {"event_id": event.event_id, "type": str(event.kind), "room_id": event.room_id,
            "user_id": event.user_id, "peer_id": event.peer_id, "at_ms": str(event.at_ms)}


class RedisEventSink:
    """XADD each event to ``switchboard.keyspace.EVENTS_STREAM``."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self.lost = 0

    async def emit(self, event: SfuEvent) -> None:
        try:
            await self._redis.xadd(EVENTS_STREAM, event_fields(event))  # type: ignore[arg-type]
        except aioredis.RedisError:
            self.lost += 1
            log.exception("event %s not written", event.event_id)


class MemoryEventSink:
    """Keeps events in a list (unit tests, and a node without Redis)."""

    def __init__(self) -> None:
        self.events: list[SfuEvent] = []

    async def emit(self, event: SfuEvent) -> None:
        self.events.append(event)
