"""Shows over several nodes, as the show book sees them (composed into :class:`signaling.shows.ShowBook`).

The book calls these hooks at each step of a show's life; they do nothing until the node gives this
object its cascade (:mod:`signaling.cascade`: the media pulled between nodes) and span
(:mod:`signaling.show_span`: roster, count and chat over the show's nodes), which it does when the
cascade is on (``cascade.secret`` set on a registered node). An edge's copy of a show is a
:class:`~signaling.shows.Show` whose ``origin`` names the node it is pulled from.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis

from signaling.cascade import Cascade
from signaling.errors import NotFound
from signaling.origin_record import Origin
from signaling.session import Session
from signaling.show_span import ShowSpan
from switchboard.ids import RoomId, UserId
from switchboard.tasks import stop_task

if TYPE_CHECKING:
    from signaling.shows import Show, ShowBook

log = logging.getLogger("switchboard.signaling")


class ShowEdges:
    """The show book's side of the cascade."""

    def __init__(self, book: ShowBook) -> None:
        self._book = book
        self.cascade: Cascade | None = None
        """Pulls shows from other nodes and serves ours to them; None: a show lives on one node only."""
        self.span: ShowSpan | None = None
        """Roster, count and chat over the show's nodes; None: this node's members only."""
        self._sending: set[asyncio.Task[None]] = set()
        self._rereading: dict[RoomId, asyncio.Task[None]] = {}
        """Room -> the read of its other nodes' members under way (:meth:`_reread`)."""
        self._again: set[RoomId] = set()
        """Rooms whose roster changed elsewhere again while that read ran: read once more after it."""

    async def close(self) -> None:
        """Stops the gifts still being handed to other nodes and the roster reads. Safe twice."""
        for task in [*self._sending, *self._rereading.values()]:
            await stop_task(task)

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

    async def line_id(self, show: Show) -> int | None:
        """The id of the show's next chat line when it spans nodes (None: numbered here)."""
        if self.span is None or not self.span.holds(show.room):
            return None
        return await self.span.next_line_id(show.room)

    async def chat(self, show: Show, line: dict[str, Any]) -> None:
        if self.span is not None:
            await self.span.publish(show.room, {"what": "chat", "line": line})

    async def moderated(self, show: Show, act: dict[str, Any]) -> None:
        """A moderation act applied here: the show's other nodes apply it too, and a node joining the
        show later starts from the state it left."""
        if self.span is None or not self.span.holds(show.room):
            return
        await self.span.save_moderation(show.room, show.lines.state())
        await self.span.publish(show.room, {"what": "moderation", "act": act})

    def gift(self, show: Show, frame: dict[str, Any]) -> None:
        """A gift shown on the origin: its edges show it to their members (sent beside the reader of
        the owner's channel, which told us)."""
        if self.span is None or not self.span.holds(show.room):
            return
        task = asyncio.get_running_loop().create_task(self._send_gift(show.room, frame), name="show-gift")
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send_gift(self, room: RoomId, frame: dict[str, Any]) -> None:
        if self.span is None:
            return
        try:
            await self.span.publish(room, {"what": "gift", "frame": frame})
        except aioredis.RedisError as exc:
            log.warning("gift not sent to the show's other nodes", extra={"room": room, "error": str(exc)})

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
            show.lines.restore(await self.span.moderation(room))
        return show

    async def going_on(self, room: RoomId, owner: UserId) -> Origin | None:
        """The record of ``owner``'s show of ``room`` when another node originates it: a broadcaster
        creating it here (moved by a drain, or back after a lost node) continues that show (its id, its
        tickets) instead of starting a new one."""
        if self.cascade is None:
            return None
        origin = await self.cascade.origin_of(room)
        return origin if origin is not None and origin.owner == owner else None

    async def moved(self, room: RoomId, origin: Origin) -> None:
        """A show this node originated goes on at ``origin.node``: our copy becomes one of its edges
        (its viewers here are fed from there; with none left, it ends here)."""
        show = self._book.live(room)
        if show is None or show.origin is not None:
            return
        await self._book.hand_over(show, origin.node)
        if self._book.live(room) is show and self.cascade is not None:
            await self.cascade.pull_moved(room, origin.node)

    async def adopt(self, show: Show) -> None:
        """An edge's copy becomes the show itself (its broadcaster created it again here): no longer pulled."""
        if self.cascade is not None:
            await self.cascade.release(show.room)

    async def release(self, show: Show) -> None:
        """An edge's copy with no member left ends here (the show goes on at its origin)."""
        if not self._book.forget_copy(show):
            return
        await self._book.media.close_room(show.room)
        if self.cascade is not None:
            await self.cascade.release(show.room)
        if self.span is not None:
            await self.span.leave(show.room)

    async def _reread(self, room: RoomId) -> None:
        """The show's members on its other nodes, from Redis, until no notice came during a read."""
        try:
            while (show := self._book.live(room)) is not None and self.span is not None:
                self._again.discard(room)
                before = set(show.remote)
                show.remote = await self.span.remote_users(show.room)
                relations = self._book.relations
                if relations is not None:
                    local = list({m.session.user_id for m in show.members.values() if not m.hidden})
                    for user in set(show.remote) - before:
                        show.keep_apart(user, await relations.blocked_among(user, local))
                self._book.announce(show)
                if room not in self._again:
                    return
        except (aioredis.RedisError, OSError) as exc:  # the span's refresh reads it again within seconds
            log.warning("show roster not read", extra={"room": room, "error": str(exc)})
        finally:
            self._rereading.pop(room, None)
            self._again.discard(room)

    async def span_event(self, message: dict[str, Any]) -> None:
        """Another node of a show we hold: its roster changed, a chat line, or the origin ended it."""
        show = self._book.live(RoomId(str(message["room"])))
        if show is None or self.span is None:
            return
        what = message.get("what")
        if what == "roster":
            # One read for a burst of notices (each join elsewhere sends one): in the background, and
            # once more after it if notices came meanwhile. The node's command loop goes on.
            if show.room in self._rereading:
                self._again.add(show.room)
            else:
                self._rereading[show.room] = asyncio.get_running_loop().create_task(self._reread(show.room))
        elif what in ("chat", "gift") and isinstance(message.get("line", message.get("frame")), dict):
            line = message["line"] if what == "chat" else message["frame"]
            sender = UserId(str(line.get("from")))
            if what == "chat" and isinstance(line.get("id"), int):
                show.lines.add(sender, str(line.get("text")), line["id"])  # deleted or pinned from here too
            hide = show.apart.get(sender, set())
            for member in show.members.values():
                if member.session.user_id not in hide:
                    member.session.send(line)
        elif what == "moderation" and isinstance(message.get("act"), dict):
            try:
                await self._book.moderation.apply(show, message["act"])
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("malformed moderation act dropped", extra={"room": show.room, "error": str(exc)})
        elif what == "ended" and show.origin is not None:
            await self._book.finish(show, str(message.get("reason", "ended")))

    async def origin_lost(self, room: RoomId) -> None:
        """An edge's show can no longer be pulled (its origin record is gone): it ends here."""
        show = self._book.live(room)
        if show is not None and show.origin is not None:
            await self._book.finish(show, "origin lost")
