"""The Redis implementation of :class:`matchmaker.types.TicketStore`, and the Lua scripts.

Scripts are files in ``matchmaker/lua/``, sent with SCRIPT LOAD/EVALSHA (redis-py's registered
scripts). ``end_pair.lua`` is a function shared by join/leave/next: it is prepended to each.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import redis.asyncio as aioredis

from matchmaker.errors import NotQueued
from matchmaker.ticket import parse_ticket
from matchmaker.types import JoinResult, NextOutcome
from switchboard import keyspace
from switchboard.ids import UserId

LUA_DIR = Path(__file__).resolve().parent / "lua"
SOURCES = MappingProxyType({p.stem: p.read_text() for p in sorted(LUA_DIR.glob("*.lua"))})
"""Script sources by name, read once at import (files shipped as package data)."""
FEED_MAXLEN = 100_000
"""``mm:feed`` is capped near this many entries; a matchmaker that falls further behind re-reads the queue."""


def now_us() -> int:
    return time.time_ns() // 1000


class RedisTicketStore:
    """Tickets in Redis under the keys of :mod:`switchboard.keyspace` (``mm:*``)."""

    def __init__(self, redis: aioredis.Redis, ticket_ttl_s: int) -> None:
        self._redis = redis
        self._ttl_ms = ticket_ttl_s * 1000
        shared = SOURCES["end_pair"]
        self._join = redis.register_script(shared + SOURCES["join"])
        self._leave = redis.register_script(shared + SOURCES["leave"])
        self._next = redis.register_script(shared + SOURCES["next"])
        self._part = redis.register_script(SOURCES["part"])

    @staticmethod
    def _end_args(user_id: str, reason: str) -> list[str]:
        return [user_id, keyspace.match_pair(""), keyspace.match_session(""), keyspace.user_channel(""), reason]

    async def join(self, user_id: UserId, premium: bool, payload: Mapping[str, Any]) -> JoinResult:
        ticket, ignored = parse_ticket(user_id, premium, payload)
        enqueued = now_us()
        await self._join(
            keys=[keyspace.match_ticket(user_id), keyspace.MATCH_QUEUE, keyspace.MATCH_FEED],
            args=[*self._end_args(user_id, "rejoin"), ticket.to_json(), self._ttl_ms, enqueued, FEED_MAXLEN],
        )
        return JoinResult(ticket=ticket, ignored_filters=ignored, enqueued_us=enqueued)

    async def leave(self, user_id: UserId) -> bool:
        removed, sid = await self._leave(
            keys=[keyspace.match_ticket(user_id), keyspace.MATCH_QUEUE, keyspace.MATCH_FEED],
            args=[*self._end_args(user_id, "leave"), FEED_MAXLEN],
        )
        return bool(removed) or bool(sid)

    async def next(self, user_id: UserId) -> NextOutcome:
        outcome = await self._next(
            keys=[keyspace.match_ticket(user_id), keyspace.MATCH_QUEUE, keyspace.match_last(user_id),
                  keyspace.MATCH_FEED],
            args=[*self._end_args(user_id, "next"), self._ttl_ms, now_us(), FEED_MAXLEN],
        )
        outcome = outcome.decode() if isinstance(outcome, bytes) else outcome
        if outcome == "none":
            raise NotQueued("user", "has no pair and no ticket to requeue; send queue.join")
        return NextOutcome(outcome)

    async def part(self, a: UserId, b: UserId, reason: str = "leave") -> bool:
        sid = await self._part(keys=[keyspace.match_pair(a), keyspace.match_pair(b)],
                               args=[a, b, keyspace.user_channel(""), reason])
        return bool(sid)
