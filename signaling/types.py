"""What a node takes from the composition root besides settings: openers of the planes it drives.

Each opener gets the node's Redis client (opened in the node's ``cleanup_ctx``), so the planes'
Redis-backed pieces share it. Unit tests pass openers of small fakes.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import redis.asyncio as aioredis

from matchmaker.types import TicketStore
from sfu.types import MediaService
from switchboard.tokens import Grants


class MediaOpener(Protocol):
    """Opens the node's SFU for its lifetime (``async with opener(redis) as media``)."""

    def __call__(self, redis: aioredis.Redis) -> AbstractAsyncContextManager[MediaService]: ...


class TicketOpener(Protocol):
    """Makes the queue the node's ``queue.*`` messages go to."""

    def __call__(self, redis: aioredis.Redis) -> TicketStore: ...

IceServersFor = Callable[[Grants], list[dict[str, Any]]]
"""A socket's grants -> the RTCConfiguration.iceServers list for its user: a TURN credential minted per
call for accounts that may call (``verified``), STUN only for the others (issue 12, item 9)."""
