"""A show's media doors (publish, subscribe, answer, ice) and the SFU's listener for the show book
(renegotiation, first media, peers it closed). Composed into :class:`signaling.shows.ShowBook`."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import Histogram

from sfu.types import IceCandidate, MediaService, PeerId
from signaling.errors import Forbidden
from signaling.renegotiation import Renegotiations
from signaling.session import Session
from switchboard.ids import RoomId, SessionId
from switchboard.tracing import Tracing

if TYPE_CHECKING:
    from signaling.shows import Member, Show, ShowBook


class ShowMedia:
    """Media negotiation of every show on this node through the SFU; the SFU's listener."""

    def __init__(self, book: ShowBook, media: MediaService, tracing: Tracing, first_media: Histogram | None) -> None:
        self._book = book
        self._media = media
        self._tracing = tracing
        self._first_media = first_media
        self._renegotiations = Renegotiations(media)

    async def close(self) -> None:
        await self._renegotiations.close()

    async def publish(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        show, member = self._book.show_of(session, body["room"])
        self._book.may_publish(session, show, member)
        await self._media.open_room(show.room)  # again after a lost SFU worker (the show lives on)
        answer = await self._media.publish(show.room, member.peer_id, session.user_id, body["sdp"])
        await self._book.events.published(show.room, session.user_id, member.peer_id, body["sdp"])
        return {"room": show.room, "sdp": answer}

    async def subscribe(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        show, member = self._book.show_of(session, body["room"])
        if not (session.grants.subscribe or session.grants.moderate):
            raise Forbidden("subscribing needs the subscribe grant")
        await self._media.open_room(show.room)
        if session.id != show.host:
            # Subscribing again (a reloaded page that resumed, a failed connection) replaces the old peer:
            # the SFU cannot ICE-restart it. A publisher's peer holds its producers and is never replaced.
            await self._media.close_peer(show.room, member.peer_id)
        with self._tracing.span("show.subscribe", parent=member.trace, attributes={"room": show.room}):
            offer = await self._media.subscribe(show.room, member.peer_id, session.user_id, hidden=member.hidden)
        return {"room": show.room, "sdp": offer}

    async def answer(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        show, member = self._book.show_of(session, body["room"])
        with self._tracing.span("show.answer", parent=member.trace, attributes={"room": show.room}):
            await self._media.accept_answer(show.room, member.peer_id, body["sdp"])
        return {"room": show.room}

    async def ice(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        show, member = self._book.show_of(session, body["room"])
        raw = body.get("candidate")
        candidate = None if raw is None else IceCandidate(raw["candidate"], raw["sdpMid"], raw["sdpMLineIndex"])
        await self._media.add_ice_candidate(show.room, member.peer_id, candidate)
        return {}

    # --- SfuListener ------------------------------------------------------------------------------

    def _by_peer(self, room: RoomId, peer_id: PeerId) -> tuple[Show, Member] | None:
        show = self._book.live(room)
        member = show.members.get(SessionId(peer_id)) if show else None
        return (show, member) if show and member else None

    async def renegotiation_needed(self, room_id: RoomId, peer_id: PeerId) -> None:
        found = self._by_peer(room_id, peer_id)
        if found is not None:
            session = found[1].session
            self._renegotiations.spawn(room_id, peer_id, lambda sdp: session.send(
                {"type": "show.offer", "room": room_id, "sdp": sdp}))

    async def first_media(self, room_id: RoomId, peer_id: PeerId) -> None:
        """Join-to-first-frame: a histogram observation, and a span from join to now in the join trace."""
        found = self._by_peer(room_id, peer_id)
        if found is None or found[1].hidden:
            return
        member = found[1]
        if self._first_media is not None:
            self._first_media.observe(max(time.time_ns() - member.joined_ns, 0) / 1e9)
        self._tracing.record("show.first_media", parent=member.trace, start_ns=member.joined_ns,
                             attributes={"room": room_id})

    async def peer_closed(self, room_id: RoomId, peer_id: PeerId, reason: str) -> None:
        found = self._by_peer(room_id, peer_id)
        if found is None:
            return
        show, member = found
        member.session.send({"type": "show.peer_closed", "room": room_id, "reason": reason})
        if member.session.id == show.host:
            # The broadcaster's media is gone (its tracks leave every viewer's connection by a show.offer);
            # the show itself goes on until its host leaves or ends it, and may publish again.
            for other in show.members.values():
                if other is not member:
                    other.session.send({"type": "show.media_stopped", "room": room_id, "reason": reason})
