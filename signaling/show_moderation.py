"""Show chat moderation: the broadcaster and moderators delete a line, pin one, mute a viewer in the
show for some minutes, or remove (kick) a viewer with a cool-down before they may join again.

Every member sees each effect at once (``show.chat_deleted``, ``show.chat_pinned``, ``show.muted``,
``show.kicked``; the removed viewer gets ``show.ended`` with reason ``removed``). The actor is named
only by role: ``owner`` or ``moderator``, so a hidden moderator acts without appearing anywhere. The
node that takes an act writes one ``show_moderated`` entry to the events stream with the real actor
(:meth:`signaling.room_events.RoomEvents.moderated`): the control API makes it an audit row.

A show over several nodes: the node taking the request checks it and applies it, then hands the act
(a plain dict: ``action``, its fields, ``by``) to the show's other nodes, which apply it to their own
members (:meth:`ShowModeration.apply`): a line deleted or pinned everywhere (line ids are numbered per
show, not per node), a mute and a kick holding on every node, the kicked viewer removed wherever it is.
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

    def add(self, user: UserId, text: str, line_id: int | None = None) -> int:
        """Keeps a new line; ``line_id`` given (a show over several nodes numbers its lines in Redis)
        or the next local one."""
        if line_id is None:
            line_id = self.next_id
        self.next_id = max(self.next_id, line_id + 1)
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

    def restore(self, state: Mapping[str, Any]) -> None:
        """An edge's new copy of a show: the pin, mutes and kicks made before it (see :meth:`state`)."""
        pinned = state.get("pinned")
        self.pinned = dict(pinned) if isinstance(pinned, dict) else None
        for name, into in (("muted", self.muted), ("kicked", self.kicked)):
            for user, until in dict(state.get(name) or {}).items():
                into[UserId(str(user))] = float(until)

    def state(self) -> dict[str, Any]:
        """What a node joining the show later needs: the pin, live mutes and kicks."""
        now = time.time()
        return {"pinned": self.pinned, "muted": {u: t for u, t in self.muted.items() if t > now},
                "kicked": {u: t for u, t in self.kicked.items() if t > now}}


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

    async def _act(self, session: Session, show: Show, act: dict[str, Any],
                   line: Mapping[str, Any] | None = None) -> None:
        """Applies ``act`` here, then on the show's other nodes, and records it for the audit log
        (``line``: the chat line it deletes or pins, quoted there)."""
        await self.apply(show, act)
        await self._book.edges.moderated(show, act)
        await self._book.events.moderated(
            show.room, session.user_id, act["by"], session.grants.hidden, act["action"],
            str(line["from"]) if line is not None else str(act["user"]),
            message_id=int(line["id"]) if line is not None else None,
            text=str(line["text"]) if line is not None else "", until=act.get("until"))

    async def delete(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        show, by = self._actor(session, body)
        line_id = body["message_id"]
        line = show.lines.recent.get(line_id)
        if line is None:
            raise NotFound(f"no recent chat line {line_id} in this show")
        await self._act(session, show, {"action": "delete", "message_id": line_id, "by": by}, line)
        return {"message_id": line_id}

    async def pin(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        show, by = self._actor(session, body)
        line = show.lines.recent.get(body["message_id"])
        if line is None:
            raise NotFound(f"no recent chat line {body['message_id']} in this show")
        await self._act(session, show, {"action": "pin", "line": dict(line), "by": by}, line)
        return {"message_id": line["id"]}

    async def mute(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        show, by = self._actor(session, body)
        user = self._target(show, body["user"])
        until = int(time.time()) + 60 * body["minutes"]
        await self._act(session, show, {"action": "mute", "user": user, "until": until, "by": by})
        return {"user": user, "until": until}

    async def kick(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        show, by = self._actor(session, body)
        user = self._target(show, body["user"])
        until = int(time.time()) + 60 * (body.get("minutes") or KICK_COOL_DOWN_MIN)
        await self._act(session, show, {"action": "kick", "user": user, "until": until, "by": by})
        return {"user": user, "until": until}

    async def apply(self, show: Show, act: Mapping[str, Any]) -> None:
        """One act (this node's, or another node's of the same show) on this node's members."""
        action, by, room = act["action"], str(act["by"]), show.room
        if action == "delete":
            line_id = int(act["message_id"])
            show.lines.recent.pop(line_id, None)
            if show.lines.pinned is not None and show.lines.pinned["id"] == line_id:
                show.lines.pinned = None
            self._send_all(show, {"type": "show.chat_deleted", "room": room, "message_id": line_id, "by": by})
        elif action == "pin":
            line = act["line"]
            show.lines.pinned = {"id": int(line["id"]), "from": str(line["from"]), "text": str(line["text"])}
            self._send_all(show, {"type": "show.chat_pinned", "room": room, "message": show.lines.pinned, "by": by})
        elif action == "mute":
            user, until = UserId(str(act["user"])), int(act["until"])
            show.lines.muted[user] = until
            self._send_all(show, {"type": "show.muted", "room": room, "user": user, "until": until, "by": by})
        elif action == "kick":
            user, until = UserId(str(act["user"])), int(act["until"])
            show.lines.kicked[user] = until
            for member in [m for m in show.members.values() if m.session.user_id == user and not m.hidden]:
                member.session.send({"type": "show.ended", "room": room, "reason": "removed"})
                await self._book.drop(show, member.session)
            self._send_all(show, {"type": "show.kicked", "room": room, "user": user, "until": until, "by": by})
