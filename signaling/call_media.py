"""Media of 1:1 calls and matches through the node's SFU, and moderators' hidden taps on them.

Each call's media path is chosen by its category when it starts, never by a tap:
``node.match_media`` (default ``sfu``) for random-chat matches, ``node.call_media`` (default ``p2p``)
for friends' calls. In ``sfu`` mode every accepted call or match whose two parties are on this
node carries its media through an SFU room named by the call id (or the match's session id) from
the first packet: each party publishes its camera on one peer connection (``call.publish``) and
receives the other's tracks on a second one (``call.subscribe``, server offers). A moderator's tap
(``call.tap``) is one more hidden subscriber in that room: the SFU keeps it out of every SDP, count
and event the parties see, so nothing a party receives differs while a tap is open. A P2P call has
no server-side media: a tap on it is refused (``unavailable``).

Parties on two nodes (the cascade on: :mod:`signaling.call_span`) go through the SFU too: each node
holds its own party's room and pulls the other party's media from the other node, so a moderator's tap
works from either node, and from any third node, which pulls both parties into a room of its own.

This book is also the SFU's listener on the node: it answers for the call rooms it holds and hands
every other room (shows) to the show book.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sfu.types import IceCandidate, MediaService, PeerId, SfuListener
from signaling.call_span import CallSpan
from signaling.errors import BadMessage, Conflict, Forbidden, NotFound, Unavailable
from signaling.renegotiation import Renegotiations
from signaling.session import Session
from switchboard.ids import RoomId, UserId

P2P, SFU = "p2p", "sfu"
LEGS = ("publish", "subscribe", "tap")
"""A session's peer connections in one call room: ``call.sfu_ice`` names the one a candidate is for."""


@dataclass
class LiveCall:
    """One accepted call or match with at least one party on this node."""

    call_id: str
    """The call id (``call.*``) or the match's ``session_id``."""
    kind: str
    """``call`` or ``match``."""
    users: tuple[UserId, UserId]
    """The two parties (caller first for calls)."""
    media: str
    """``p2p`` or ``sfu``: fixed when the call starts, told to both parties, never changed by a tap."""
    started_at: int
    """Wall-clock milliseconds when the node saw it start."""
    peers: dict[PeerId, tuple[Session, str]] = field(default_factory=dict)
    """SFU peers of this room -> (the session that owns it, its leg)."""
    remote: bool = False
    """A tap's copy on a node holding no party (both parties pulled from their nodes)."""

    def public(self) -> dict[str, Any]:
        return {"call_id": self.call_id, "kind": self.kind, "users": list(self.users), "media": self.media,
                "started_at": self.started_at}


class CallMedia:
    """Every live call and match this node's users are in; the SFU rooms of the ``sfu`` ones."""

    def __init__(self, media: MediaService, call_mode: str, match_mode: str, shows: SfuListener) -> None:
        self._media = media
        self._modes = {"call": call_mode, "match": match_mode}
        self._shows = shows
        self._calls: dict[str, LiveCall] = {}
        self._renegotiations = Renegotiations(media)
        self.span: CallSpan | None = None
        """Calls whose parties are on two nodes (the cascade); None: ``sfu`` needs both parties here."""
        media.set_listener(self)

    async def close(self) -> None:
        """Node stop: renegotiations are cancelled, every call room is closed (its taps with it)."""
        await self._renegotiations.close()
        for live in list(self._calls.values()):
            await self._drop(live)
        self._media.set_listener(self._shows)

    def mode(self, kind: str, both_here: bool) -> str:
        """The media of a ``call`` or ``match`` starting now, by its category (never by a tap):
        ``sfu`` needs both parties on this node (one SFU room), or the cascade (each node pulls the other's)."""
        return SFU if self._modes[kind] == SFU and (both_here or self.span is not None) else P2P

    # --- lifetime (driven by the call book) --------------------------------------------------------

    def started(self, call_id: str, kind: str, users: tuple[UserId, UserId], media: str) -> None:
        live = self._calls.get(call_id)
        if live is not None and not live.remote:
            return
        if live is None:
            live = self._calls[call_id] = LiveCall(call_id, kind, users, media, int(time.time() * 1000))
        else:  # a tap's copy, and a party came back here (``call.rejoin``): the room is the party's now
            live.remote = False
            if self.span is not None:
                self.span.untapped(RoomId(call_id))
        if media == SFU and self.span is not None:
            room = RoomId(call_id)
            self.span.started(room, kind, users, live.started_at, lambda: self._media.open_room(room))

    async def ended(self, call_id: str) -> None:
        """Hangup, decline after accept, timeout, ``match.ended``: the room closes (taps included)."""
        live = self._calls.get(call_id)
        if live is not None:
            await self._drop(live)

    async def user_left(self, user_id: UserId, kind: str | None = None, keep: str | None = None) -> None:
        """The user is out of every call (``kind=None``: gone) or every match (left or skipped the queue),
        but ``keep``."""
        for live in list(self._calls.values()):
            if user_id in live.users and kind in (None, live.kind) and live.call_id != keep:
                await self._drop(live)

    async def session_gone(self, session: Session) -> None:
        """A session ended for good: its peers close (a moderator's taps, a party's legs)."""
        for live in list(self._calls.values()):
            for peer_id, (owner, _) in list(live.peers.items()):
                if owner is session:
                    live.peers.pop(peer_id, None)
                    await self._media.close_peer(RoomId(live.call_id), peer_id)
            if live.remote and not live.peers:
                await self._drop(live)

    async def _drop(self, live: LiveCall) -> None:
        self._calls.pop(live.call_id, None)
        for session, leg in live.peers.values():
            if leg == "tap":  # the parties learn it from call.ended / match.ended; a moderator from this
                session.send({"type": "call.sfu_closed", "call_id": live.call_id, "leg": leg, "reason": "ended"})
        live.peers.clear()
        if live.media == SFU:
            await self._media.close_room(RoomId(live.call_id))
            if self.span is not None:
                if live.remote:
                    self.span.untapped(RoomId(live.call_id))
                    await self.span.cascade.release(RoomId(live.call_id))
                else:
                    await self.span.ended(RoomId(live.call_id))

    async def lost(self, room: RoomId) -> None:
        """A tap's copy can no longer pull its parties (the call ended on their nodes): it ends here."""
        live = self._calls.get(room)
        if live is not None and live.remote:
            await self._drop(live)

    # --- parties -----------------------------------------------------------------------------------

    def _party(self, session: Session, call_id: str) -> LiveCall:
        live = self._calls.get(call_id)
        if live is None or session.user_id not in live.users or session.grants.hidden:
            raise NotFound(f"you are in no live call or match {call_id!r}")
        if live.media != SFU:
            raise Conflict("this call is peer-to-peer: use call.offer / call.answer / call.ice")
        return live

    def _peer(self, live: LiveCall, session: Session, leg: str) -> PeerId:
        peer_id = PeerId(f"{session.id}.{leg}")
        live.peers[peer_id] = (session, leg)
        return peer_id

    async def publish(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        """A party's camera: its SDP offer in, the SFU's answer out (again on the same leg: renegotiation)."""
        live = self._party(session, body["call_id"])
        await self._media.open_room(RoomId(live.call_id))
        answer = await self._media.publish(RoomId(live.call_id), self._peer(live, session, "publish"),
                                           session.user_id, body["sdp"])
        await self._still_live(live)
        return {"call_id": live.call_id, "sdp": answer}

    async def _still_live(self, live: LiveCall) -> None:
        """The call ended while the SFU worked on it (its room may have been opened again on the way):
        close it again rather than leak it."""
        if self._calls.get(live.call_id) is not live:
            await self._media.close_room(RoomId(live.call_id))
            raise NotFound(f"the call {live.call_id!r} has ended")

    async def subscribe(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        """The other party's tracks: the SFU's offer (later ones come as ``call.sfu_offer``)."""
        live = self._party(session, body["call_id"])
        return {"call_id": live.call_id, "sdp": await self._open_subscriber(live, session, "subscribe", False)}

    async def _open_subscriber(self, live: LiveCall, session: Session, leg: str, hidden: bool) -> str:
        room, peer_id = RoomId(live.call_id), PeerId(f"{session.id}.{leg}")
        await self._media.open_room(room)
        # Again (a reloaded page that resumed): the SFU cannot ICE-restart, so the old peer goes first.
        await self._media.close_peer(room, peer_id)
        self._peer(live, session, leg)
        offer = await self._media.subscribe(room, peer_id, session.user_id, hidden=hidden)
        await self._still_live(live)
        return offer

    def _own(self, session: Session, call_id: str, leg: str) -> tuple[LiveCall, PeerId]:
        live = self._calls.get(call_id)
        peer_id = PeerId(f"{session.id}.{leg}")
        if live is None or live.peers.get(peer_id, (None,))[0] is not session:
            raise NotFound(f"you have no {leg} connection in call {call_id!r}")
        return live, peer_id

    async def answer(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        """The answer to the SFU's last offer, on the session's subscribe (or tap) leg."""
        live, peer_id = self._own(session, body["call_id"], self._leg(body, ("subscribe", "tap")))
        await self._media.accept_answer(RoomId(live.call_id), peer_id, body["sdp"])
        # Tracks that arrived while our offer waited for this answer were not offered (the SFU offers
        # only from a stable state): ask again now; nothing is sent when nothing changed.
        self._offer_again(RoomId(live.call_id), peer_id)
        return {"call_id": live.call_id}

    @staticmethod
    def _leg(body: Mapping[str, Any], legs: tuple[str, ...]) -> str:
        if body["leg"] not in legs:
            raise BadMessage(f"'leg' must be one of {', '.join(legs)}")
        return str(body["leg"])

    async def ice(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        live, peer_id = self._own(session, body["call_id"], self._leg(body, LEGS))
        raw = body.get("candidate")
        candidate = None if raw is None else IceCandidate(raw["candidate"], raw["sdpMid"], raw["sdpMLineIndex"])
        await self._media.add_ice_candidate(RoomId(live.call_id), peer_id, candidate)
        return {}

    # --- moderators --------------------------------------------------------------------------------

    @staticmethod
    def _moderator(session: Session) -> None:
        if not session.grants.moderate:
            raise Forbidden("this needs a token with the moderate grant")

    async def list_calls(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        """Moderators: every live call and match on this node (the moderation console)."""
        self._moderator(session)
        return {"calls": [live.public() for live in self._calls.values()]}

    async def tap(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        """A hidden subscriber in the call's room: the SFU's offer for the moderator to answer."""
        self._moderator(session)
        live = self._calls.get(body["call_id"]) or await self._pull(RoomId(str(body["call_id"])))
        if live is None:
            raise NotFound(f"no live call or match {body['call_id']!r} on this node")
        if session.user_id in live.users:
            raise Forbidden("you are a party of this call")
        if live.media != SFU:
            raise Unavailable("the call is peer-to-peer: its media never reaches a server, so it cannot be tapped")
        offer = await self._open_subscriber(live, session, "tap", True)
        return {**live.public(), "sdp": offer}

    async def _pull(self, room: RoomId) -> LiveCall | None:
        """A call through the SFU whose parties are on other nodes: both pulled into a room here, for a tap."""
        found = await self.span.find(room) if self.span is not None else None
        if found is None or self.span is None:
            return None
        live = self._calls[room] = LiveCall(room, found.kind, found.users, SFU, found.started_at, remote=True)
        try:
            await self._media.open_room(room)
            await self.span.tapped(room, found.nodes)
        except BaseException:
            await self._drop(live)
            raise
        return live

    async def untap(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        live, peer_id = self._own(session, body["call_id"], "tap")
        live.peers.pop(peer_id, None)
        await self._media.close_peer(RoomId(live.call_id), peer_id)
        if live.remote and not live.peers:
            await self._drop(live)
        return {"call_id": live.call_id}

    # --- SfuListener (call rooms here; every other room is a show's) -------------------------------

    def _by_peer(self, room_id: RoomId, peer_id: PeerId) -> tuple[Session, str] | None:
        live = self._calls.get(room_id)
        return live.peers.get(peer_id) if live is not None else None

    async def renegotiation_needed(self, room_id: RoomId, peer_id: PeerId) -> None:
        if room_id not in self._calls:
            await self._shows.renegotiation_needed(room_id, peer_id)
            return
        self._offer_again(room_id, peer_id)

    def _offer_again(self, room_id: RoomId, peer_id: PeerId) -> None:
        found = self._by_peer(room_id, peer_id)
        if found is not None:
            session, leg = found
            self._renegotiations.spawn(room_id, peer_id, lambda sdp: session.send(
                {"type": "call.sfu_offer", "call_id": room_id, "leg": leg, "sdp": sdp}))

    async def first_media(self, room_id: RoomId, peer_id: PeerId) -> None:
        if room_id not in self._calls:  # calls measure nothing here yet
            await self._shows.first_media(room_id, peer_id)

    async def peer_closed(self, room_id: RoomId, peer_id: PeerId, reason: str) -> None:
        if room_id not in self._calls:
            await self._shows.peer_closed(room_id, peer_id, reason)
            return
        found = self._by_peer(room_id, peer_id)
        if found is not None:
            self._calls[room_id].peers.pop(peer_id, None)
            found[0].send({"type": "call.sfu_closed", "call_id": room_id, "leg": found[1], "reason": reason})
