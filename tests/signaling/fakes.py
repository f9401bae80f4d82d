"""Fakes at the SFU's and the matchmaker's Protocol boundaries (MediaService, TicketStore)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from matchmaker.errors import BadTicket
from matchmaker.ticket import parse_ticket
from matchmaker.types import JoinResult, NextOutcome
from sfu.clips import Clip
from sfu.errors import NegotiationError, NoClip
from sfu.types import IceCandidate, MediaService, PeerId, RoomStats, SfuListener
from switchboard.ids import RoomId, UserId
from switchboard.keyspace import user_channel


@dataclass
class FakeMedia:
    """Records every call; SDPs are tagged strings so tests can see what went where."""

    listener: SfuListener | None = None
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    peers: dict[RoomId, dict[PeerId, bool]] = field(default_factory=dict)

    def set_listener(self, listener: SfuListener | None) -> None:
        self.listener = listener

    async def open_room(self, room_id: RoomId) -> None:
        self.calls.append(("open_room", room_id))

    async def publish(self, room_id: RoomId, peer_id: PeerId, user_id: UserId, offer_sdp: str) -> str:
        if not offer_sdp.startswith("v=0"):
            raise NegotiationError("not an SDP offer")
        self.calls.append(("publish", room_id, peer_id, user_id))
        self.peers.setdefault(room_id, {})[peer_id] = False
        return f"answer-for-{peer_id}"

    async def add_ice_candidate(self, room_id: RoomId, peer_id: PeerId, candidate: IceCandidate | None) -> None:
        self.calls.append(("ice", room_id, peer_id, candidate))

    async def subscribe(self, room_id: RoomId, peer_id: PeerId, user_id: UserId, *, hidden: bool = False) -> str:
        self.calls.append(("subscribe", room_id, peer_id, user_id, hidden))
        self.peers.setdefault(room_id, {})[peer_id] = hidden
        return f"offer-for-{peer_id}"

    async def accept_answer(self, room_id: RoomId, peer_id: PeerId, answer_sdp: str) -> None:
        self.calls.append(("answer", room_id, peer_id, answer_sdp))

    async def renegotiate(self, room_id: RoomId, peer_id: PeerId) -> str | None:
        self.calls.append(("renegotiate", room_id, peer_id))
        return f"reoffer-for-{peer_id}"

    async def close_peer(self, room_id: RoomId, peer_id: PeerId) -> None:
        self.calls.append(("close_peer", room_id, peer_id))
        self.peers.get(room_id, {}).pop(peer_id, None)

    async def close_room(self, room_id: RoomId) -> None:
        self.calls.append(("close_room", room_id))
        self.peers.pop(room_id, None)

    async def room_stats(self, room_id: RoomId) -> RoomStats:
        return RoomStats(room_id, 0, sum(1 for h in self.peers.get(room_id, {}).values() if not h))

    async def set_max_layer(self, room_id: RoomId, peer_id: PeerId, max_layer: int | None) -> int:
        return 0

    async def link_stats(self, room_id: RoomId, peer_id: PeerId) -> dict[str, Any]:
        return {"available_outgoing_bitrate": None, "estimate_source": None, "loss": 0.0, "rtt_ms": None}

    async def save_clip(self, room_id: RoomId) -> Clip:
        raise NoClip(f"room {room_id}: a fake SFU buffers nothing")


def media_opener(media: MediaService):  # type: ignore[no-untyped-def]
    @contextlib.asynccontextmanager
    async def opener(redis: Any) -> AsyncIterator[MediaService]:
        yield media

    return opener


@dataclass
class FakeTickets:
    """A queue that pairs the first two joiners and publishes match.found like the matchmaker does."""

    redis: Any
    waiting: list[UserId] = field(default_factory=list)
    left: list[UserId] = field(default_factory=list)
    pairs: int = 0
    paired: dict[UserId, str] = field(default_factory=dict)
    """User -> the session of their live pair (what ``mm:pair`` holds for the real store)."""

    async def join(self, user_id: UserId, premium: bool, payload: Mapping[str, Any]) -> JoinResult:
        try:
            ticket, ignored = parse_ticket(user_id, premium, payload)
        except BadTicket:
            raise
        self.waiting.append(user_id)
        if len(self.waiting) >= 2:
            a, b = self.waiting.pop(0), self.waiting.pop(0)
            self.pairs += 1
            session = f"pair-{self.pairs}"
            self.paired[a] = self.paired[b] = session
            for me, other in ((a, b), (b, a)):
                found = {"type": "match.found", "session_id": session, "peer": {"user_id": other, "profile": {}},
                         "offerer": me == min(a, b)}
                await self.redis.publish(user_channel(me), json.dumps(found))
        return JoinResult(ticket, ignored, 0)

    async def leave(self, user_id: UserId) -> bool:
        self.left.append(user_id)
        present = user_id in self.waiting
        self.waiting = [u for u in self.waiting if u != user_id]
        return present

    async def part(self, a: UserId, b: UserId, reason: str = "leave") -> bool:
        session = self.paired.get(a)
        if session is None or self.paired.get(b) != session:
            return False
        del self.paired[a], self.paired[b]
        ended = json.dumps({"type": "match.ended", "session_id": session, "reason": reason})
        for user in (a, b):
            await self.redis.publish(user_channel(user), ended)
        return True

    async def next(self, user_id: UserId) -> NextOutcome:
        return NextOutcome.QUEUED
