"""Shows (1:many) on this node: membership, roster, chat, and media negotiation through the SFU.

A show lives on the node whose SFU holds its media, so its members are sessions of this node.
Hidden sessions (moderator taps) are members for media only: never in a roster, a count or an event.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sfu.types import IceCandidate, MediaService, PeerId
from signaling.errors import Conflict, Forbidden, NotFound, RateLimited
from signaling.limits import TokenBucket
from signaling.renegotiation import Renegotiations
from signaling.session import Session
from signaling.types import IceServersFor
from switchboard.ids import RoomId, SessionId, UserId, new_id


@dataclass
class Member:
    """One session in one show."""

    session: Session
    peer_id: PeerId
    hidden: bool
    """A moderator tap: invisible to everyone else."""


@dataclass
class Show:
    """One show: its owner (the broadcaster) and its members by session."""

    room: RoomId
    owner: UserId
    members: dict[SessionId, Member] = field(default_factory=dict)
    chat: dict[UserId, TokenBucket] = field(default_factory=dict)

    def roster(self) -> dict[str, Any]:
        users = list(dict.fromkeys(m.session.user_id for m in self.members.values() if not m.hidden))
        viewers = {u for u in users if u != self.owner}
        return {"room": self.room, "owner": self.owner, "roster": users, "viewers": len(viewers)}


class ShowBook:
    """Every show on this node; also the SFU's listener (renegotiation, peers it closed)."""

    def __init__(self, media: MediaService, chat_rate_per_s: float, chat_burst: int,
                 ice_servers: IceServersFor) -> None:
        self._media = media
        self._ice_servers = ice_servers
        self._chat_rate = chat_rate_per_s
        self._chat_burst = chat_burst
        self._shows: dict[RoomId, Show] = {}
        self._renegotiations = Renegotiations(media)
        media.set_listener(self)

    async def close(self) -> None:
        await self._renegotiations.close()
        for room in list(self._shows):
            await self._media.close_room(room)
        self._shows.clear()
        self._media.set_listener(None)

    def _show(self, room: str) -> Show:
        show = self._shows.get(RoomId(room))
        if show is None:
            raise NotFound(f"no show {room!r} on this node")
        return show

    def _member(self, session: Session, room: str) -> tuple[Show, Member]:
        show = self._show(room)
        member = show.members.get(session.id)
        if member is None:
            raise NotFound(f"you are not in show {room!r}: join it first")
        return show, member

    @staticmethod
    def _door(session: Session, room: str) -> None:
        if session.grants.room is not None and session.grants.room != room:
            raise Forbidden(f"your token opens room {session.grants.room!r}, not {room!r}")

    def _broadcast(self, show: Show, message: dict[str, Any]) -> None:
        for member in show.members.values():
            member.session.send(message)

    def _announce(self, show: Show) -> None:
        self._broadcast(show, {"type": "show.roster", **show.roster()})

    def _add(self, show: Show, session: Session) -> Member:
        member = Member(session, PeerId(session.id), hidden=session.grants.hidden)
        show.members[session.id] = member
        session.enter_show(show.room)
        if not member.hidden:
            self._announce(show)
        return member

    # --- membership -------------------------------------------------------------------------------

    async def create(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        if not session.grants.publish:
            raise Forbidden("creating a show needs a token with the publish grant")
        room = RoomId(body.get("room") or session.grants.room or new_id("show_"))
        self._door(session, room)
        if room in self._shows:
            raise Conflict(f"show {room!r} already exists")
        await self._media.open_room(room)
        if room in self._shows:  # made by another create while the SFU opened the room
            raise Conflict(f"show {room!r} already exists")
        show = Show(room, session.user_id)
        self._shows[room] = show
        member = self._add(show, session)
        return {"peer_id": member.peer_id, "ice_servers": self._ice_servers(session.user_id), **show.roster()}

    async def join(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        room = body["room"]
        self._door(session, room)
        g = session.grants
        if not (g.subscribe or g.publish or g.moderate):
            raise Forbidden("joining a show needs the subscribe grant")
        show = self._show(room)
        member = show.members.get(session.id) or self._add(show, session)
        return {"peer_id": member.peer_id, "hidden": member.hidden, "ice_servers": self._ice_servers(session.user_id),
                **show.roster()}

    async def leave(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        show, _ = self._member(session, body["room"])
        if session.user_id == show.owner and not session.grants.hidden:
            await self._end(show, "owner left")
        else:
            await self._drop(show, session)
        return {"room": show.room}

    async def _drop(self, show: Show, session: Session) -> None:
        member = show.members.pop(session.id, None)
        session.leave_show(show.room)
        if member is None:
            return
        await self._media.close_peer(show.room, member.peer_id)
        if not member.hidden:
            self._announce(show)

    async def end(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        show = self._show(body["room"])
        if session.user_id != show.owner and not session.grants.moderate:
            raise Forbidden("only the show's owner or a moderator may end it")
        await self._end(show, "ended")
        return {"room": show.room}

    async def _end(self, show: Show, reason: str) -> None:
        self._shows.pop(show.room, None)
        self._broadcast(show, {"type": "show.ended", "room": show.room, "reason": reason})
        for member in show.members.values():
            member.session.leave_show(show.room)
        show.members.clear()
        await self._media.close_room(show.room)

    async def roster(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        show, _ = self._member(session, body["room"])
        return show.roster()

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
            if session.user_id == show.owner and not session.grants.hidden:
                await self._end(show, "owner left")
            else:
                await self._drop(show, session)

    # --- media ------------------------------------------------------------------------------------

    async def publish(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        show, member = self._member(session, body["room"])
        if not session.grants.publish or member.hidden:
            raise Forbidden("publishing needs the publish grant")
        await self._media.open_room(show.room)  # again after a lost SFU worker (the show lives on)
        answer = await self._media.publish(show.room, member.peer_id, session.user_id, body["sdp"])
        return {"room": show.room, "sdp": answer}

    async def subscribe(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        show, member = self._member(session, body["room"])
        if not (session.grants.subscribe or session.grants.moderate):
            raise Forbidden("subscribing needs the subscribe grant")
        await self._media.open_room(show.room)
        if not session.grants.publish:
            # Subscribing again (a reloaded page that resumed, a failed connection) replaces the old peer:
            # the SFU cannot ICE-restart it. A publisher's peer holds its producers and is never replaced.
            await self._media.close_peer(show.room, member.peer_id)
        offer = await self._media.subscribe(show.room, member.peer_id, session.user_id, hidden=member.hidden)
        return {"room": show.room, "sdp": offer}

    async def answer(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        show, member = self._member(session, body["room"])
        await self._media.accept_answer(show.room, member.peer_id, body["sdp"])
        return {"room": show.room}

    async def ice(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        show, member = self._member(session, body["room"])
        raw = body.get("candidate")
        candidate = None if raw is None else IceCandidate(raw["candidate"], raw["sdpMid"], raw["sdpMLineIndex"])
        await self._media.add_ice_candidate(show.room, member.peer_id, candidate)
        return {}

    async def chat(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        show, member = self._member(session, body["room"])
        if member.hidden:
            raise Forbidden("a hidden session cannot chat (it would be seen)")
        now = time.monotonic()
        bucket = show.chat.setdefault(session.user_id, TokenBucket(self._chat_rate, self._chat_burst, now))
        if not bucket.take(now):
            raise RateLimited(f"show chat is limited to {self._chat_rate:g} lines/s (burst {self._chat_burst})")
        self._broadcast(show, {"type": "show.chat", "room": show.room, "from": session.user_id, "text": body["text"]})
        return {}

    # --- SfuListener ------------------------------------------------------------------------------

    def _by_peer(self, room: RoomId, peer_id: PeerId) -> tuple[Show, Member] | None:
        show = self._shows.get(room)
        member = show.members.get(SessionId(peer_id)) if show else None
        return (show, member) if show and member else None

    async def renegotiation_needed(self, room_id: RoomId, peer_id: PeerId) -> None:
        found = self._by_peer(room_id, peer_id)
        if found is not None:
            session = found[1].session
            self._renegotiations.spawn(room_id, peer_id, lambda sdp: session.send(
                {"type": "show.offer", "room": room_id, "sdp": sdp}))

    async def peer_closed(self, room_id: RoomId, peer_id: PeerId, reason: str) -> None:
        found = self._by_peer(room_id, peer_id)
        if found is None:
            return
        show, member = found
        member.session.send({"type": "show.peer_closed", "room": room_id, "reason": reason})
        if member.session.user_id == show.owner and not member.hidden:
            # The broadcaster's media is gone (its tracks leave every viewer's connection by a show.offer);
            # the show itself goes on until the owner leaves or ends it, and may publish again.
            for other in show.members.values():
                if other is not member:
                    other.session.send({"type": "show.media_stopped", "room": room_id, "reason": reason})
