"""Shows over several nodes, as the show book sees them (composed into :class:`signaling.shows.ShowBook`).

The book calls these hooks at each step of a show's life; they do nothing until the node gives this
object its cascade (:mod:`signaling.cascade`: the media pulled between nodes) and span
(:mod:`signaling.show_span`: roster, count and chat over the show's nodes), which it does when the
cascade is on (``cascade.secret`` set on a registered node). An edge's copy of a show is a
:class:`~signaling.shows.Show` whose ``origin`` names the node it is pulled from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from signaling.cascade import Cascade, Origin
from signaling.errors import NotFound
from signaling.session import Session
from signaling.show_span import ShowSpan
from switchboard.ids import RoomId, UserId

if TYPE_CHECKING:
    from signaling.shows import Show, ShowBook


class ShowEdges:
    """The show book's side of the cascade."""

    def __init__(self, book: ShowBook) -> None:
        self._book = book
        self.cascade: Cascade | None = None
        """Pulls shows from other nodes and serves ours to them; None: a show lives on one node only."""
        self.span: ShowSpan | None = None
        """Roster, count and chat over the show's nodes; None: this node's members only."""

    # hooks of the book ---------------------------------------------------------------------------

    async def opened(self, show: Show) -> None:
        """A show started here: this node is its origin."""
        if self.span is not None:
            await self.span.enter(show.room)
        if self.cascade is not None:
            await self.cascade.opened(show.room, Origin(self.cascade.node_id, show.owner, show.show_id,
                                                        show.started_ms, show.paid))

    async def joined(self, show: Show, session: Session) -> None:
        if self.span is not None:
            await self.span.joined(show.room, session.id, session.user_id)

    async def left(self, show: Show, session: Session) -> None:
        if self.span is not None:
            await self.span.left(show.room, session.id)

    async def chat(self, show: Show, line: dict[str, Any]) -> None:
        if self.span is not None:
            await self.span.publish(show.room, {"what": "chat", "line": line})

    async def ended(self, show: Show, reason: str) -> None:
        """The show ended here (its room is closed): an edge stops pulling; the origin tells its edges."""
        if show.origin is not None:
            if self.cascade is not None:
                await self.cascade.release(show.room)
            if self.span is not None:
                await self.span.leave(show.room)
            return
        if self.span is not None:
            await self.span.publish(show.room, {"what": "ended", "reason": reason})
            await self.span.leave(show.room, last=True)
        if self.cascade is not None:
            await self.cascade.ended(show.room)

    # an edge's copy ------------------------------------------------------------------------------

    async def pull(self, room: RoomId) -> Show:
        """A show live on another node: this node becomes one of its edges (it pulls the media)."""
        if self.cascade is None:
            raise NotFound(f"no show {room!r} on this node")
        media = self._book.media
        origin = await self.cascade.pull(room, lambda: media.open_room(room))
        show, fresh = self._book.hold_copy(room, origin)
        if fresh and self.span is not None:
            await self.span.enter(room)
            show.remote = await self.span.remote_users(room)
        return show

    async def release(self, show: Show) -> None:
        """An edge's copy with no member left ends here (the show goes on at its origin)."""
        if not self._book.forget_copy(show):
            return
        await self._book.media.close_room(show.room)
        if self.cascade is not None:
            await self.cascade.release(show.room)
        if self.span is not None:
            await self.span.leave(show.room)

    async def span_event(self, message: dict[str, Any]) -> None:
        """Another node of a show we hold: its roster changed, a chat line, or the origin ended it."""
        show = self._book.live(RoomId(str(message["room"])))
        if show is None or self.span is None:
            return
        what = message.get("what")
        if what == "roster":
            before = set(show.remote)
            show.remote = await self.span.remote_users(show.room)
            relations = self._book.relations
            if relations is not None:
                local = list({m.session.user_id for m in show.members.values() if not m.hidden})
                for user in set(show.remote) - before:
                    show.keep_apart(user, await relations.blocked_among(user, local))
            self._book.announce(show)
        elif what == "chat" and isinstance(message.get("line"), dict):
            line = message["line"]
            hide = show.apart.get(UserId(str(line.get("from"))), set())
            for member in show.members.values():
                if member.session.user_id not in hide:
                    member.session.send(line)
        elif what == "ended" and show.origin is not None:
            await self._book.finish(show, str(message.get("reason", "ended")))

    async def origin_lost(self, room: RoomId) -> None:
        """An edge's show can no longer be pulled (its origin record is gone): it ends here."""
        show = self._book.live(room)
        if show is not None and show.origin is not None:
            await self._book.finish(show, "origin lost")
