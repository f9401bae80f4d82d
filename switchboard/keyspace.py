"""Redis: how a process opens it, and (as planes land) every key and channel name, in one place.

Keys are functions or constants here and nowhere else; Lua scripts live next to this file.
"""

from __future__ import annotations

import redis
import redis.asyncio as aioredis
from redis.driver_info import DriverInfo

EVENTS_STREAM = "events"
"""Stream of durable facts from nodes and matchmakers to the control API (likes, follows, taps)."""


def user_channel(user_id: str) -> str:
    """Pub/sub channel that reaches whichever node holds this user's socket."""
    return f"user:{user_id}"


def open_redis(url: str) -> aioredis.Redis:
    """A pooled asyncio client (hiredis parser when installed). Close it with ``await r.aclose()``."""
    # lib_version given: redis-py otherwise reads package metadata from disk on every new connection.
    return aioredis.Redis.from_url(
        url, health_check_interval=30, socket_keepalive=True,
        driver_info=DriverInfo(name="redis-py", lib_version=redis.__version__),
    )


# --- matchmaker (issue 5). Scripts that touch these keys: matchmaker/lua/*.lua -----------------

MATCH_QUEUE = "mm:queue"
"""Sorted set: user id -> enqueued time (microseconds since the epoch). Oldest first. Written with
the ticket by ``queue.join``; a member whose ticket key is gone is stale and is removed by the
matchmaker."""

MATCH_SCORERS = "mm:scorers"
"""Sorted set: matchmaker process id -> last heartbeat (ms). A process's rank in it picks its shard."""


def match_ticket(user_id: str) -> str:
    """String (JSON, expires with the ticket TTL): the user's queued ticket, in the format of
    docs/matchmaker.md: ``{"user_id", "country", "age", "lat", "lon", "tags", "premium", "filters":
    {"countries", "age_min", "age_max", "max_km", "tags"}, "profile"}``."""
    return f"mm:ticket:{user_id}"


def match_pair(user_id: str) -> str:
    """String: the ``session_id`` of the user's live pair; absent when not paired."""
    return f"mm:pair:{user_id}"


def match_last(user_id: str) -> str:
    """String: the ``session_id`` of the user's last pair (``queue.next`` requeues from it)."""
    return f"mm:last:{user_id}"


def match_session(session_id: str) -> str:
    """Hash: one pair: ``a``, ``b`` (user ids), ``at_us`` (time), ``ta``, ``tb`` (their tickets)."""
    return f"mm:session:{session_id}"


def match_recent(user_id: str) -> str:
    """Sorted set: peer user id -> time paired (us); no rematch while within the window."""
    return f"mm:recent:{user_id}"


def blocks(user_id: str) -> str:
    """Set of user ids this user blocked. Written by the control API; the matchmaker never pairs
    two users when either blocks the other."""
    return f"blocks:{user_id}"
