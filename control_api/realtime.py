"""Realtime delivery to online users: one JSON message published on the user's channel.

Whichever node holds the user's socket is subscribed to ``user:{id}`` and forwards the message;
nobody listening means the user is offline and the durable copy (message, notification) waits.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from switchboard.keyspace import user_channel

log = logging.getLogger("switchboard.api.realtime")


class Realtime:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def push(self, user_id: uuid.UUID, message: dict[str, Any]) -> int:
        """Publishes ``message`` (which has a ``type``); returns how many nodes received it.
        A Redis failure is logged, not raised: the durable record is already committed."""
        try:
            return int(await self._redis.publish(user_channel(str(user_id)), json.dumps(message, default=str)))
        except RedisError:
            log.warning("realtime push to %s failed", user_id, exc_info=True)
            return 0
