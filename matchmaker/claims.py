"""The atomic claim: keys and arguments for ``lua/claim.lua``, the ``match.found`` messages."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import redis.asyncio as aioredis

from matchmaker.store import FEED_MAXLEN, SOURCES
from matchmaker.ticket import Ticket
from switchboard import keyspace
from switchboard.ids import SessionId, new_id

EVENTS_MAXLEN = 1_000_000


class ClaimStatus(enum.Enum):
    OK = "ok"
    GONE_A = "gone_a"
    """The first ticket is gone (paired by another process, left, expired)."""
    GONE_B = "gone_b"
    BUSY_A = "busy_a"
    """The first user is still in a live pair (queued without ``queue.join`` ending it)."""
    BUSY_B = "busy_b"
    BLOCKED = "blocked"
    REMATCH = "rematch"


@dataclass(frozen=True)
class Proposal:
    """A pair to claim. ``a`` offers (the longer-waiting side)."""

    a: Ticket
    b: Ticket
    session_id: SessionId


def found_message(session_id: str, peer: Ticket, offerer: bool) -> str:
    """``match.found`` for the user paired with ``peer`` (the peer's public JSON is built once per ticket)."""
    return (f'{{"type":"match.found","session_id":"{session_id}","peer":{peer.public_json},'
            f'"offerer":{"true" if offerer else "false"}}}')


class Claimer:
    """Runs the claim script for a batch of disjoint proposals: one EVALSHA for the whole batch."""

    def __init__(self, redis: aioredis.Redis, rematch_window_s: int, session_ttl_s: int) -> None:
        self._script = redis.register_script(SOURCES["claim"])
        self._window_us = rematch_window_s * 1_000_000
        self._session_ttl_ms = session_ttl_s * 1000

    @staticmethod
    def propose(a: Ticket, b: Ticket) -> Proposal:
        return Proposal(a, b, SessionId(new_id("ses_")))

    async def claim(self, proposals: list[Proposal], now_us: int) -> list[ClaimStatus]:
        """One status per proposal, in order; stale pairs are refused one by one, never the batch."""
        if not proposals:
            return []
        keys = [keyspace.MATCH_QUEUE, keyspace.EVENTS_STREAM, keyspace.MATCH_FEED]
        args: list[str | int | float] = [now_us, self._window_us, self._session_ttl_ms, EVENTS_MAXLEN, FEED_MAXLEN,
                              keyspace.user_channel("")]
        for p in proposals:
            a, b = p.a.user_id, p.b.user_id
            keys += [keyspace.match_ticket(a), keyspace.match_ticket(b), keyspace.match_pair(a), keyspace.match_pair(b),
                     keyspace.match_last(a), keyspace.match_last(b), keyspace.match_recent(a),
                     keyspace.match_recent(b), keyspace.blocks(a), keyspace.blocks(b),
                     keyspace.match_session(p.session_id)]
            args += [a, b, p.session_id,
                     found_message(p.session_id, p.b, True), found_message(p.session_id, p.a, False)]
        statuses = await self._script(keys=keys, args=args)
        return [_STATUS[s] for s in statuses]


_STATUS: dict[str | bytes, ClaimStatus] = {**{s.value: s for s in ClaimStatus},
                                           **{s.value.encode(): s for s in ClaimStatus}}
