"""Show chat moderation: the broadcaster and moderators delete a line, pin one, mute a viewer in the
show for some minutes, or remove (kick) a viewer with a cool-down before they may join again.

Every member sees each effect at once (``show.chat_deleted``, ``show.chat_pinned``, ``show.muted``,
``show.kicked``; the removed viewer gets ``show.ended`` with reason ``removed``). The actor is named
only by role: ``owner`` or ``moderator``, so a hidden moderator acts without appearing anywhere.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from signaling.errors import Forbidden, Muted, NotFound
from signaling.session import Session
from switchboard.ids import UserId

if TYPE_CHECKING:
    from signaling.shows import Show, ShowBook

KEEP_LINES = 200
"""Recent chat lines a show keeps (by id) so that they can be deleted or pinned."""
KICK_COOL_DOWN_MIN = 10
"""Minutes a removed viewer waits before joining again, unless the remover says otherwise."""


@dataclass
class ChatLines:
    """One show's chat state: recent lines by id, the pinned line, per-show mutes and kicks."""

    next_id: int = 1
    recent: OrderedDict[int, dict[str, Any]] = field(default_factory=OrderedDict)
    pinned: dict[str, Any] | None = None
    """The pinned line ``{id, from, text}``, or None."""
    muted: dict[UserId, float] = field(default_factory=dict)
    """User -> when their mute in this show ends (unix seconds)."""
    kicked: dict[UserId, float] = field(default_factory=dict)
    """User -> when they may join again (unix seconds)."""

    def add(self, user: UserId, text: str) -> int:
        line_id, self.next_id = self.next_id, self.next_id + 1
        self.recent[line_id] = {"id": line_id, "from": user, "text": text}
        if len(self.recent) > KEEP_LINES:
            self.recent.popitem(last=False)
        return line_id

    def may_chat(self, user: UserId) -> None:
        end = self.muted.get(user)
        if end is not None:
            if end > time.time():
                raise Muted(f"you are muted in this show for {_minutes(end)} more minute(s)")
            del self.muted[user]

    def may_join(self, user: UserId) -> None:
        end = self.kicked.get(user)
        if end is not None:
            if end > time.time():
                raise Forbidden(f"you were removed from this show; you may join again in {_minutes(end)} minute(s)")
            del self.kicked[user]


def _minutes(end: float) -> int:
    return max(1, int((end - time.time() + 59) // 60))


class ShowModeration:
    """The moderation doors of every show on this node (composed into the :class:`ShowBook`)."""

    def __init__(self, book: ShowBook) -> None:
        self._book = book

    def _actor(self, session: Session, body: Mapping[str, Any]) -> tuple[Show, str]:
        """The show and the actor's role, when the session may moderate it (its owner, or a
        moderator's token for this room, hidden or not)."""
        show, _ = self._book.show_of(session, body["room"])
        if session.user_id == show.owner and not session.grants.hidden:
            return show, "owner"
        if session.grants.moderate:
            return show, "moderator"
        raise Forbidden("only the show's broadcaster or a moderator may do this")

    @staticmethod
    def _target(show: Show, user: str) -> UserId:
        if user == show.owner:
            raise Forbidden("the broadcaster cannot be muted or removed from their own show")
        return UserId(user)

    @staticmethod
    def _send_all(show: Show, message: dict[str, Any]) -> None:
        for member in show.members.values():
            member.session.send(message)

    async def delete(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        show, by = self._actor(session, body)
        line_id = body["message_id"]
        if show.lines.recent.pop(line_id, None) is None:
            raise NotFound(f"no recent chat line {line_id} in this show")
        if show.lines.pinned is not None and show.lines.pinned["id"] == line_id:
            show.lines.pinned = None
        self._send_all(show, {"type": "show.chat_deleted", "room": show.room, "message_id": line_id, "by": by})
        return {"message_id": line_id}

    async def pin(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        show, by = self._actor(session, body)
        line = show.lines.recent.get(body["message_id"])
        if line is None:
            raise NotFound(f"no recent chat line {body['message_id']} in this show")
        show.lines.pinned = dict(line)
        self._send_all(show, {"type": "show.chat_pinned", "room": show.room, "message": show.lines.pinned, "by": by})
        return {"message_id": line["id"]}

    async def mute(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        show, by = self._actor(session, body)
        user = self._target(show, body["user"])
        until = int(time.time()) + 60 * body["minutes"]
        show.lines.muted[user] = until
        self._send_all(show, {"type": "show.muted", "room": show.room, "user": user, "until": until, "by": by})
        return {"user": user, "until": until}

    async def kick(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        show, by = self._actor(session, body)
        user = self._target(show, body["user"])
        until = int(time.time()) + 60 * (body.get("minutes") or KICK_COOL_DOWN_MIN)
        show.lines.kicked[user] = until
        for member in [m for m in show.members.values() if m.session.user_id == user and not m.hidden]:
            member.session.send({"type": "show.ended", "room": show.room, "reason": "removed"})
            await self._book.drop(show, member.session)
        self._send_all(show, {"type": "show.kicked", "room": show.room, "user": user, "until": until, "by": by})
        return {"user": user, "until": until}
