"""Shows (1:many) on this node: membership, roster, chat, and media negotiation through the SFU.

A show's publisher is on its origin node; viewers placed on other nodes join there, and that node
pulls the show from the origin (an edge: :mod:`signaling.cascade`), so a show's members are sessions
of several nodes: each node holds its own, and the roster, count and chat span them all through Redis
(:mod:`signaling.show_span`). Hidden sessions (moderator taps) are members for media only: never in a
roster, a count or an event, on any node.
Blocks hold inside a show, both ways: two members with a block between them never see each other in
the roster nor each other's chat; a block made live with the show's owner removes the other from it.

Who may publish where is decided by the control API: it signs a room token with the ``publish``
grant only for the room's owner (a verified account). Every door here checks that the session's
token names the very room asked for (:meth:`ShowBook._door`), so a token for one room, a socket
token, or a refreshed token for another room opens nothing else. A show has one broadcaster: the
session that created it (its ``host``); no other session publishes in it, not even the owner's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import Histogram

from sfu.types import MediaService, PeerId
from signaling.errors import Conflict, Forbidden, NotFound
from signaling.origin_record import Origin
from signaling.paid_shows import PaidShows
from signaling.relations import Relations
from signaling.room_events import RoomEvents
from signaling.roster_pace import RosterPace, send_roster
from signaling.session import Session
from signaling.show import Member, Show
from signaling.show_chat import ShowChat
from signaling.show_edges import ShowEdges
from signaling.show_links import ShowLinks
from signaling.show_media import ShowMedia
from signaling.show_moderation import ShowModeration
from signaling.types import IceServersFor
from switchboard.events import EventType
from switchboard.ids import NodeId, RoomId, SessionId, UserId
from switchboard.tracing import Tracing, traceparent_of


class ShowBook:
    """Every show on this node; also the SFU's listener (renegotiation, peers it closed)."""

    def __init__(self, media: MediaService, chat_rate_per_s: float, chat_burst: int,
                 ice_servers: IceServersFor, relations: Relations | None = None,
                 paid: PaidShows | None = None, tracing: Tracing | None = None,
                 first_media: Histogram | None = None) -> None:
        self._media = media
        self._paid = paid
        self._tracing = tracing or Tracing()
        self._relations = relations
        self._ice_servers = ice_servers
        self._shows: dict[RoomId, Show] = {}
        self._pace = RosterPace(self._announce_now)
        self.moderation = ShowModeration(self)
        """The broadcaster's and moderators' doors: delete, pin, mute, kick."""
        self.links = ShowLinks(self, media)
        """``show.stats``: a member's own link."""
        self.doors = ShowMedia(self, media, self._tracing, first_media)
        """The media doors (publish, subscribe, answer, ice); the SFU's listener."""
        media.set_listener(self.doors)
        self.talk = ShowChat(self, chat_rate_per_s, chat_burst)
        """The chat door and gifts."""
        self.events = RoomEvents(None)  # webhooks' room facts (visible members only); the node gives it Redis
        self.edges = ShowEdges(self)
        """Shows over several nodes (the cascade); the node gives it its pieces when the cascade is on."""

    async def close(self) -> None:
        self._pace.close()
        await self.doors.close()
        await self.edges.close()
        for room in list(self._shows):
            await self._media.close_room(room)
        self._shows.clear()
        self._media.set_listener(None)

    def rooms(self) -> list[RoomId]:
        """The live shows this node originates (the node registry counts them and pins them here);
        an edge's copies are not among them."""
        return [room for room, show in self._shows.items() if show.origin is None]

    def hosts(self) -> set[SessionId]:
        """The sessions publishing the shows this node originates (a drain moves them last)."""
        return {show.host for show in self._shows.values() if show.origin is None}

    def _show(self, room: str) -> Show:
        show = self._shows.get(RoomId(room))
        if show is None:
            raise NotFound(f"no show {room!r} on this node")
        return show

    def _member(self, session: Session, room: str, door: bool = True) -> tuple[Show, Member]:
        if door:
            self._door(session, room)
        show = self._show(room)
        member = show.members.get(session.id)
        if member is None:
            raise NotFound(f"you are not in show {room!r}: join it first")
        return show, member

    @staticmethod
    def _door(session: Session, room: str) -> None:
        """The shared check of every show door: the session's token (as of now: ``token.refresh``
        replaces it) must name this room. A socket token (no room) opens no show."""
        if session.grants.room != room:
            opens = f"room {session.grants.room!r}" if session.grants.room is not None else "no room"
            raise Forbidden(f"your token opens {opens}, not {room!r}: ask the API for a token for this room")

    def _not_live(self, room: RoomId, session: Session) -> None:
        """A show is created where none is live; an edge's copy of its owner's show may become it."""
        show = self._shows.get(room)
        if show is not None and (show.origin is None or show.owner != session.user_id):
            raise Conflict(f"show {room!r} already exists")

    @staticmethod
    def may_publish(session: Session, show: Show, member: Member | None) -> None:
        """Only the show's host publishes: the owner's session that created it, with a publish grant
        for this room (checked again here: the grants may have been refreshed since)."""
        g = session.grants
        if not g.publish or g.room != show.room or (member is not None and member.hidden):
            raise Forbidden(f"publishing in {show.room!r} needs a broadcaster token for it (its owner's)")
        if not g.verified:
            raise Forbidden("verify your email first: unverified accounts may watch but not broadcast")
        if session.user_id != show.owner:
            raise Forbidden(f"show {show.room!r} belongs to someone else")
        if session.id != show.host:
            raise Conflict(f"show {show.room!r} already has its broadcaster (another session): one publisher per show")

    def live(self, room: RoomId) -> Show | None:
        """The show of ``room`` on this node (its origin or an edge's copy), if live here."""
        return self._shows.get(room)

    def hold_copy(self, room: RoomId, origin: Origin) -> tuple[Show, bool]:
        """An edge's copy of the show ``origin`` describes, kept here; False when a concurrent join kept one first."""
        show = self._shows.get(room)
        if show is not None:
            return show, False
        show = self._shows[room] = Show(room, UserId(origin.owner), SessionId(""), show_id=origin.show_id,
                                        started_ms=origin.started_ms, paid=origin.paid, origin=origin.node)
        return show, True

    async def hand_over(self, show: Show, node: NodeId) -> None:
        """The show we originated goes on at ``node`` (its broadcaster created it there): ours becomes
        an edge's copy of it. The old host's membership here ends (it publishes there now); the
        viewers stay and are fed through a pipe from ``node``."""
        host = show.members.get(show.host)
        show.origin, show.host = node, SessionId("")
        if host is not None:
            await self._drop(show, host.session)

    def forget_copy(self, show: Show) -> bool:
        """Drops an edge's copy with no member left; False when it is not the live one."""
        if self._shows.get(show.room) is not show:
            return False
        del self._shows[show.room]
        return True

    @property
    def media(self) -> MediaService:
        return self._media

    @property
    def relations(self) -> Relations | None:
        return self._relations

    def announce(self, show: Show) -> None:
        """Sends every member the roster as it may see it."""
        self._announce(show)

    async def finish(self, show: Show, reason: str) -> None:
        """Ends ``show`` here (every member gets ``show.ended`` with ``reason``)."""
        await self._end(show, reason)

    def show_of(self, session: Session, room: str) -> tuple[Show, Member]:
        """The show and the session's membership, through the room door (for the moderation doors)."""
        return self._member(session, room)

    def _broadcast(self, show: Show, message: dict[str, Any]) -> None:
        for member in show.members.values():
            member.session.send(message)

    def _announce(self, show: Show) -> None:
        self._pace.announce(show.room, len(show.members))  # at once, or merged a moment later (roster_pace.py)

    def _announce_now(self, room: RoomId) -> None:
        if (show := self._shows.get(room)) is not None:
            send_roster(show)

    async def _add(self, show: Show, session: Session) -> Member:
        member = Member(session, PeerId(session.id), hidden=session.grants.hidden)
        show.members[session.id] = member
        session.enter_show(show.room)
        if not member.hidden:
            # Added first, read after: of two who join at once, the later read sees the earlier member.
            if self._relations is not None:
                show.keep_apart(session.user_id, await self._relations.blocked_among(session.user_id,
                                                                                     list(show.users())))
            self._announce(show)
            await self.events.joined(show.room, session.user_id, member.peer_id)
            await self.edges.joined(show, session)
        return member

    # --- membership -------------------------------------------------------------------------------

    async def create(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        g = session.grants
        if not g.publish or g.room is None or g.hidden:
            raise Forbidden("creating a show needs a broadcaster token for its room (POST /api/rooms/{room}/token)")
        room = RoomId(body.get("room") or g.room)
        self._door(session, room)
        self._not_live(room, session)
        show = Show(room, session.user_id, session.id)
        self.may_publish(session, show, None)
        await self._media.open_room(room)
        self._not_live(room, session)  # made by another create while the SFU opened the room
        copy = self._shows.get(room)
        going_on = await self.edges.going_on(room, session.user_id)
        if copy is not None:  # an edge's copy: its broadcaster came here (its origin moved or died), its viewers stay
            await self.edges.adopt(copy)
            copy.origin, copy.host = None, session.id
            show = copy
        elif going_on is not None:  # live on another node until now: the same show goes on here
            show.show_id, show.started_ms, show.paid = going_on.show_id, going_on.started_ms, going_on.paid
        self._shows[room] = show
        if self._paid is not None and going_on is None:
            await self._paid.opened(show)
        await self.edges.opened(show)
        await self.events.emit(EventType.ROOM_STARTED, room, user=session.user_id)
        member = await self._add(show, session)
        return {"peer_id": member.peer_id, "ice_servers": self._ice_servers(session.grants), "paid": show.paid,
                **show.roster()}

    async def join(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        # The join trace: child of the API's token reply when the client passed its traceparent on.
        with self._tracing.span("show.join", parent=body.get("traceparent"), attributes={"room": body["room"]}) as span:
            return await self._join(session, body, traceparent_of(span))

    async def _join(self, session: Session, body: Mapping[str, Any], trace: str | None) -> dict[str, Any]:
        room = body["room"]
        self._door(session, room)
        g = session.grants
        if not (g.subscribe or g.publish or g.moderate):
            raise Forbidden("joining a show needs the subscribe grant")
        show = self._shows.get(RoomId(room)) or await self.edges.pull(RoomId(room))
        member = show.members.get(session.id)
        if member is None:
            PaidShows.admit(session, show)
            if not g.hidden:
                show.lines.may_join(session.user_id)
            member = await self._add(show, session)
        member.trace = trace
        return {"peer_id": member.peer_id, "hidden": member.hidden, "ice_servers": self._ice_servers(session.grants),
                "pinned": show.lines.pinned, **show.roster(session.user_id)}

    async def leave(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        show, _ = self._member(session, body["room"], door=False)  # leaving needs no grant
        if session.id == show.host:
            await self._end(show, "owner left")
        else:
            await self._drop(show, session)
        return {"room": show.room}

    async def drop(self, show: Show, session: Session) -> None:
        """Takes ``session`` out of ``show`` (a kick)."""
        await self._drop(show, session)

    async def _drop(self, show: Show, session: Session) -> None:
        member = show.members.pop(session.id, None)
        session.leave_show(show.room)
        if member is None:
            return
        await self._media.close_peer(show.room, member.peer_id)
        if not member.hidden:
            if session.user_id not in show.users():
                show.forget(session.user_id)
            self._announce(show)
            await self.events.left(show.room, session.user_id, member.peer_id)
            await self.edges.left(show, session)
        if show.origin is not None and not show.members:
            await self.edges.release(show)

    async def end(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        self._door(session, body["room"])
        show = self._show(body["room"])
        if session.user_id != show.owner and not session.grants.moderate:
            raise Forbidden("only the show's owner or a moderator may end it")
        await self._end(show, "ended")
        return {"room": show.room}

    async def _end(self, show: Show, reason: str) -> None:
        self._shows.pop(show.room, None)
        self._pace.forget(show.room)
        self._broadcast(show, {"type": "show.ended", "room": show.room, "reason": reason})
        for member in show.members.values():
            member.session.leave_show(show.room)
        if show.origin is None:  # the show's one end, told by its origin (an edge's copy ends with it)
            await self.events.finished(show.room, show.owner, [(m.session.user_id, m.peer_id)
                                                               for m in show.members.values() if not m.hidden], reason)
        show.members.clear()
        await self._media.close_room(show.room)
        await self.edges.ended(show, reason)
        if show.origin is not None:  # an edge's copy: the show itself lives on at its origin, or has ended
            return
        if self._paid is not None:
            await self._paid.closed(show)

    async def roster(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        show, _ = self._member(session, body["room"])
        return show.roster(session.user_id)

    async def list_shows(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        """Moderators: every show on this node, with its visible roster (the moderation console)."""
        if not session.grants.moderate:
            raise Forbidden("listing shows needs the moderate grant")
        return {"shows": [show.roster() for show in self._shows.values()]}

    async def session_gone(self, session: Session) -> None:
        """The session ended for good: it leaves every show (an owner's show ends)."""
        for room in list(session.shows):
            show = self._shows.get(RoomId(room))
            if show is None:
                continue
            if session.id == show.host:
                await self._end(show, "owner left")
            else:
                await self._drop(show, session)

    async def block(self, blocker: UserId, blocked: UserId) -> None:
        """A block was made (the ``block`` sanctions notice): in every show holding both, the two are
        kept apart from now on; when one of them owns the show, the other leaves it (``show.ended``
        with reason ``removed``: the same as being removed by the owner, nothing about a block)."""
        for show in list(self._shows.values()):
            users = show.users()
            if blocker not in users or blocked not in users:
                continue
            if show.owner in (blocker, blocked):
                gone = blocked if show.owner == blocker else blocker
                for member in [m for m in show.members.values() if m.session.user_id == gone and not m.hidden]:
                    member.session.send({"type": "show.ended", "room": show.room, "reason": "removed"})
                    await self._drop(show, member.session)
            else:
                show.keep_apart(blocker, {blocked})
                self._announce(show)
