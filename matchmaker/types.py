"""The matchmaker's public face: what the node calls on ``queue.join``/``queue.leave``/``queue.next``.

Messages published to ``switchboard.keyspace.user_channel(user)`` (the node forwards them as-is):

    {"type": "match.found", "session_id": str, "peer": {"user_id", "country", "tags", "profile"},
     "offerer": bool}
    {"type": "match.ended", "session_id": str, "reason": "next" | "leave" | "rejoin"}
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from matchmaker.ticket import Ticket
from switchboard.ids import UserId


@dataclass(frozen=True)
class JoinResult:
    """The answer to ``queue.join``."""

    ticket: Ticket
    """The ticket as queued (premium-only filters of other users removed)."""
    ignored_filters: tuple[str, ...]
    """Premium-only filters the user set but may not use; the reply says so."""
    enqueued_us: int
    """Queue position key: microseconds since the epoch."""


class NextOutcome(enum.Enum):
    REQUEUED = "requeued"
    """The live pair (if any) ended and the user waits again with the ticket of the last pair."""
    QUEUED = "queued"
    """The user was already waiting; nothing changed."""


class TicketStore(Protocol):
    """The queue as the node sees it. Errors: :mod:`matchmaker.errors`."""

    async def join(self, user_id: UserId, premium: bool, payload: Mapping[str, Any]) -> JoinResult:
        """Validates the payload, ends the user's live pair (the peer gets ``match.ended``) and
        queues the ticket, replacing a ticket already queued."""
        ...

    async def leave(self, user_id: UserId) -> bool:
        """Removes the ticket and ends the live pair (``queue.leave``, disconnect). True when
        there was a ticket or a pair. Safe to call twice."""
        ...

    async def part(self, a: UserId, b: UserId, reason: str = "leave") -> bool:
        """Ends the live pair of ``a`` and ``b`` when they are paired with each other (a block made
        during a match): both get ``match.ended`` with ``reason``. True when a pair ended; their
        tickets (none while paired) are untouched."""
        ...

    async def next(self, user_id: UserId) -> NextOutcome:
        """Ends the live pair and requeues the user (``queue.next``); NotQueued when there is
        nothing to requeue."""
        ...
