"""A show's roster announcements, paced: a burst of joins sends the roster a few times a second, not once per join.

Each join, leave, block or roster change on another node of the show sent the whole roster (each
member's own view of it) to every member at once: n viewers joining a show of m members together
made n x m frames of m names each. The viewers of a killed node, all moving at the same moment,
kept the receiving node's loop (and their own clients) busy for seconds with rosters at once out of
date. Now, in a show of :data:`PACED_FROM` members or more, the first change goes out at once and
the changes within :data:`ROSTER_INTERVAL_S` after it are merged into one more announcement at the
end of the interval, which reads the roster then: every member still ends with the latest roster, at
most a quarter of a second late. A smaller show announces every change at once (it costs little).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from switchboard.ids import RoomId
from switchboard.wire import Codec

if TYPE_CHECKING:
    from signaling.show import Show

ROSTER_INTERVAL_S = 0.25
"""At most one roster announcement per paced show this often (the first of a burst at once)."""
PACED_FROM = 32
"""Shows with at least this many members (on this node) are paced."""


def send_roster(show: Show) -> None:
    """The roster to every member of ``show``, as each may see it (blocks keep some apart). The roster
    everyone sees is encoded once per wire codec, not once per member (py-spy on a node taking a
    killed node's viewers: 26-40 % of its samples were JSON of the same roster, once per member)."""
    everyone = {"type": "show.roster", **show.roster()}
    shared: dict[Codec, str | bytes] = {}
    for member in show.members.values():
        user = member.session.user_id
        if user in show.apart:
            member.session.send({"type": "show.roster", **show.roster(user)})
        else:
            member.session.send(everyone, encoded=shared)


class RosterPace:
    """Calls ``send(room)`` at once, then at most once per ``interval_s`` per room: the calls in between
    are merged into one at the end of the interval."""

    def __init__(self, send: Callable[[RoomId], None], interval_s: float = ROSTER_INTERVAL_S,
                 paced_from: int = PACED_FROM) -> None:
        self._send = send
        self._interval = interval_s
        self._paced_from = paced_from
        self._last: dict[RoomId, float] = {}
        """Room -> when its roster last went out (loop time)."""
        self._due: dict[RoomId, asyncio.TimerHandle] = {}
        """Room -> the merged announcement waiting for the end of its interval."""

    def announce(self, room: RoomId, members: int) -> None:
        """The roster of ``room`` (``members`` on this node) changed."""
        if room in self._due:
            return  # the announcement already due reads the roster when it goes
        loop = asyncio.get_running_loop()
        wait = self._last.get(room, -math.inf) + self._interval - loop.time()
        if wait <= 0 or members < self._paced_from:
            self._last[room] = loop.time()
            self._send(room)
        else:
            self._due[room] = loop.call_later(wait, self._fire, room)

    def _fire(self, room: RoomId) -> None:
        self._due.pop(room, None)
        self._last[room] = asyncio.get_running_loop().time()
        self._send(room)

    def forget(self, room: RoomId) -> None:
        """The show ended here: nothing more is announced for it."""
        handle = self._due.pop(room, None)
        if handle is not None:
            handle.cancel()
        self._last.pop(room, None)

    def close(self) -> None:
        for room in list(self._due):
            self.forget(room)
