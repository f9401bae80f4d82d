"""A show's chat door and its gifts (composed into :class:`signaling.shows.ShowBook`).

A line goes to this node's members at once (except those a block keeps apart from the sender) and to
the show's other nodes (:mod:`signaling.show_edges`); its id comes from the show's one counter when
the show spans nodes, so a delete or pin names the same line on each. A gift the API sold reaches the
owner's node (the show's origin, where its broadcaster is), which shows it and hands it to the edges.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from signaling.errors import Forbidden, RateLimited
from signaling.limits import TokenBucket
from signaling.paid_shows import PaidShows
from signaling.session import Session
from switchboard.ids import RoomId, UserId

if TYPE_CHECKING:
    from signaling.shows import Show, ShowBook


class ShowChat:
    """Chat lines and gifts of every show on this node."""

    def __init__(self, book: ShowBook, rate_per_s: float, burst: int) -> None:
        self._book = book
        self._rate = rate_per_s
        self._burst = burst

    async def chat(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        show, member = self._book.show_of(session, body["room"])
        if member.hidden:
            raise Forbidden("a hidden session cannot chat (it would be seen)")
        now = time.monotonic()
        bucket = show.chat.setdefault(session.user_id, TokenBucket(self._rate, self._burst, now))
        show.lines.may_chat(session.user_id)
        if not bucket.take(now):
            raise RateLimited(f"show chat is limited to {self._rate:g} lines/s (burst {self._burst})")
        line_id = show.lines.add(session.user_id, body["text"], await self._book.edges.line_id(show))
        line = {"type": "show.chat", "room": show.room, "id": line_id, "from": session.user_id, "text": body["text"]}
        self.deliver(show, line)
        await self._book.edges.chat(show, line)
        return {"id": line["id"]}

    @staticmethod
    def deliver(show: Show, frame: dict[str, Any]) -> None:
        """Sends a chat line or gift to this node's members, but not to those kept apart from its sender."""
        hide = show.apart.get(UserId(str(frame.get("from"))), set())
        for member in show.members.values():
            if member.session.user_id not in hide:
                member.session.send(frame)

    def gift_arrived(self, user: UserId, message: dict[str, Any]) -> None:
        """A gift the API sold (``show.gift`` on the owner's channel): every member of the owner's show
        sees it, on every node of the show, except those a block keeps apart from the sender. Only the
        origin takes it from the channel (an owner's other socket on an edge would show it twice)."""
        show = self._book.live(RoomId(str(message.get("room"))))
        if show is None or show.owner != user or show.origin is not None:
            return
        frame = PaidShows.gift_frame(show, message)
        if frame is None:
            return
        self.deliver(show, frame)
        self._book.edges.gift(show, frame)
