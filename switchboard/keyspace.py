"""Redis: how a process opens it, and (as planes land) every key and channel name, in one place.

Keys are functions or constants here and nowhere else; Lua scripts live next to this file.
"""

from __future__ import annotations

import redis.asyncio as aioredis

EVENTS_STREAM = "events"
"""Stream of durable facts from nodes and matchmakers to the control API (likes, follows, taps)."""


def user_channel(user_id: str) -> str:
    """Pub/sub channel that reaches whichever node holds this user's socket."""
    return f"user:{user_id}"


def open_redis(url: str) -> aioredis.Redis:
    """A pooled asyncio client (hiredis parser when installed). Close it with ``await r.aclose()``."""
    return aioredis.Redis.from_url(url, health_check_interval=30, socket_keepalive=True)
