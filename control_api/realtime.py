"""Realtime delivery to online users: one JSON message published on the user's channel.

Whichever node holds the user's socket is subscribed to ``user:{id}`` and forwards the message;
nobody listening means the user is offline and the durable copy (message, notification) waits.
On a Redis Cluster ``PUBLISH`` reaches every cluster node but counts only the subscribers of the one
that took it: a push nobody counted asks the user's presence key (as ``signaling.hub.Hub.deliver``).

The pushes of one loop pass go to Redis together, in one pipeline (as the standing reads of
control_api/revocation.py do): a burst of requests that each push (a batch of tips committed at
once, each telling its creator) pays one round trip, not one each. On a Redis Cluster, whose
pipeline refuses ``PUBLISH``, they are sent side by side instead.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from switchboard.keyspace import presence, user_channel
from switchboard.redis_client import is_cluster, mget

log = logging.getLogger("switchboard.api.realtime")


class Realtime:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._batch: list[tuple[str, str, asyncio.Future[int]]] | None = None
        """Pushes asked for in this loop pass, sent together at its end."""
        self._sends: set[asyncio.Task[None]] = set()

    async def push(self, user_id: uuid.UUID, message: dict[str, Any]) -> int:
        """Publishes ``message`` (which has a ``type``); returns how many nodes received it.
        A Redis failure is logged, not raised: the durable record is already committed."""
        # Shielded: a request that goes away does not cancel the pushes of the others.
        return await asyncio.shield(self.send(user_id, message))

    def send(self, user_id: uuid.UUID, message: dict[str, Any]) -> asyncio.Future[int]:
        """:meth:`push` for a caller that need not wait: the message goes with this loop pass's
        batch; the future (always given a result, never an exception) may be dropped."""
        loop = asyncio.get_running_loop()
        batch = self._batch
        if batch is None:
            batch = self._batch = []
            loop.call_soon(self._flush, batch)
        future: asyncio.Future[int] = loop.create_future()  # always given a result, never an exception
        batch.append((user_channel(str(user_id)), json.dumps(message, default=str), future))
        return future

    def _flush(self, batch: list[tuple[str, str, asyncio.Future[int]]]) -> None:
        self._batch = None
        task = asyncio.get_running_loop().create_task(self._publish(batch))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _publish(self, batch: list[tuple[str, str, asyncio.Future[int]]]) -> None:
        try:
            if len(batch) == 1:
                counts = [await self._redis.publish(batch[0][0], batch[0][1])]
            elif is_cluster(self._redis):  # redis-py's cluster pipeline refuses PUBLISH: sent side by side
                counts = list(await asyncio.gather(*(self._redis.publish(c, p) for c, p, _ in batch)))
            else:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for channel, payload, _ in batch:
                        pipe.publish(channel, payload)
                    counts = await pipe.execute()
            if is_cluster(self._redis) and not all(counts):
                counts = await self._online(batch, [int(c) for c in counts])
        except (RedisError, OSError):
            log.warning("realtime push of %d messages failed", len(batch), exc_info=True)
            counts = [0] * len(batch)
        except BaseException:  # cancelled (the app stopping): nobody is left waiting
            for _, _, future in batch:
                if not future.done():
                    future.set_result(0)
            raise
        for (_, _, future), count in zip(batch, counts, strict=True):
            if not future.done():
                future.set_result(int(count))

    async def _online(self, batch: list[tuple[str, str, asyncio.Future[int]]], counts: list[int]) -> list[int]:
        """Counts of a cluster's PUBLISH, with 1 for each uncounted push whose user some node holds."""
        unseen = [i for i, count in enumerate(counts) if not count]
        held = await mget(self._redis, [presence(batch[i][0].removeprefix(user_channel(""))) for i in unseen])
        for i, node in zip(unseen, held, strict=True):
            counts[i] = 1 if node is not None else 0
        return counts
