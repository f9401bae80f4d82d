"""One Redis stream read in a consumer group, at least once: the shared loop of the API's stream
consumers (the nodes' events, :mod:`control_api.events`; the billing requests, :mod:`control_api.paid_calls`).

A pass reads this consumer's own pending entries (left by a pass that failed), then claims those a
dead consumer left for longer than ``claim_idle_ms``, then waits up to ``block_ms`` for new ones.
What an entry means, and whether one failure stops the pass, is the subclass's :meth:`handle_all`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

log = logging.getLogger("switchboard.api.streams")


class StreamGroup:
    def __init__(self, redis: Redis, stream: str, group: str, *, name: str | None, claim_idle_ms: int,
                 block_ms: int) -> None:
        self._redis = redis
        self._stream = stream
        self._group = group
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._claim_idle_ms = claim_idle_ms
        self._block_ms = block_ms

    async def ensure_group(self) -> None:
        """The group, from the start of the stream (entries written before the API's first start count)."""
        try:
            await self._redis.xgroup_create(self._stream, self._group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def run(self) -> None:
        """Until cancelled; a failure backs off and retries."""
        while True:
            try:
                await self.ensure_group()
                await self.process_once(block_ms=0)
                while True:
                    await self.process_once(block_ms=self._block_ms)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("consumer of %s failed; retrying in 1 s", self._stream)
                await asyncio.sleep(1.0)

    async def process_once(self, block_ms: int = 0, count: int = 100) -> int:
        """One pass: this consumer's own pending entries, stale ones of others, then new ones.
        Returns how many entries were handled (and acknowledged)."""
        handled = 0
        own: Any = await self._redis.xreadgroup(self._group, self.name, {self._stream: "0"}, count=count)
        for _, entries in own or []:
            handled += await self.handle_all(entries)
        claimed: Any = await self._redis.xautoclaim(self._stream, self._group, self.name,
                                               min_idle_time=self._claim_idle_ms, start_id="0-0", count=count)
        handled += await self.handle_all(claimed[1])
        fresh: Any = await self._redis.xreadgroup(self._group, self.name, {self._stream: ">"}, count=count,
                                             block=block_ms or None)
        for _, entries in fresh or []:
            handled += await self.handle_all(entries)
        return handled

    async def ack(self, entry_id: Any) -> None:
        await self._redis.xack(self._stream, self._group, entry_id)

    async def handle_all(self, entries: list[Any]) -> int:
        """Handles and acknowledges ``entries`` ((id, fields or None when trimmed) pairs); how many."""
        raise NotImplementedError
