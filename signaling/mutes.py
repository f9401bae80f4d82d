"""Account mutes (a moderator's sanction) for the users with a session on this node.

The control API mirrors each mute into Redis (``keyspace.muted``, expiring with it) and announces it
on the sanctions channel (``mute``/``unmute``). A node reads the key once when a user's first
session arrives (with the subscription batch: signaling/subscriptions.py) and follows the notices
after that, so the check on every chat line is one dict lookup (no Redis): :meth:`Mutes.check`.
"""

from __future__ import annotations

import logging
import math
import time

from signaling.errors import Muted
from switchboard.ids import UserId

log = logging.getLogger("switchboard.signaling")


class Mutes:
    """User -> when their mute ends (unix seconds; ``inf`` until lifted)."""

    def __init__(self) -> None:
        self._until: dict[UserId, float] = {}

    def loaded(self, user: UserId, raw: bytes | str | None) -> None:
        """The user's ``keyspace.muted`` value as read at connect (their first session here, read
        with the subscription batch); None: not muted."""
        if raw is not None:
            self.set(user, _until(raw))

    def set(self, user: UserId, until: float | None) -> None:
        self._until[user] = math.inf if not until else float(until)

    def clear(self, user: UserId) -> None:
        self._until.pop(user, None)

    def until(self, user: UserId) -> float | None:
        """When the user's mute ends (``inf``: until lifted), or None when not muted."""
        end = self._until.get(user)
        if end is not None and end <= time.time():
            del self._until[user]
            return None
        return end

    def check(self, user: UserId) -> None:
        """Raises :class:`Muted` while the user is muted."""
        end = self.until(user)
        if end is not None:
            when = "a moderator lifts it" if end == math.inf else time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(end))
            raise Muted(f"a moderator muted you: no chat until {when}")


def _until(raw: bytes | str) -> float | None:
    try:
        return float(raw) or None
    except ValueError:
        return None
