"""The MediaService of a node started without an SFU: every media request is ``unavailable``."""

from __future__ import annotations

from typing import Any

from sfu.clips import Clip
from sfu.types import IceCandidate, PeerId, RoomStats, SfuListener
from signaling.errors import Unavailable
from switchboard.ids import RoomId, UserId


class UnavailableMedia:
    """Shows can be created and joined (roster, chat); publishing and subscribing are refused."""

    def set_listener(self, listener: SfuListener | None) -> None:
        pass

    async def open_room(self, room_id: RoomId) -> None:
        pass

    async def publish(self, room_id: RoomId, peer_id: PeerId, user_id: UserId, offer_sdp: str) -> str:
        raise Unavailable("this node has no SFU")

    async def add_ice_candidate(self, room_id: RoomId, peer_id: PeerId, candidate: IceCandidate | None) -> None:
        raise Unavailable("this node has no SFU")

    async def subscribe(self, room_id: RoomId, peer_id: PeerId, user_id: UserId, *, hidden: bool = False) -> str:
        raise Unavailable("this node has no SFU")

    async def accept_answer(self, room_id: RoomId, peer_id: PeerId, answer_sdp: str) -> None:
        raise Unavailable("this node has no SFU")

    async def renegotiate(self, room_id: RoomId, peer_id: PeerId) -> str | None:
        return None

    async def close_peer(self, room_id: RoomId, peer_id: PeerId) -> None:
        pass

    async def close_room(self, room_id: RoomId) -> None:
        pass

    async def save_clip(self, room_id: RoomId) -> Clip:
        raise Unavailable("this node has no SFU")

    async def set_max_layer(self, room_id: RoomId, peer_id: PeerId, max_layer: int | None) -> int:
        raise Unavailable("this node has no SFU")

    async def link_stats(self, room_id: RoomId, peer_id: PeerId) -> dict[str, Any]:
        raise Unavailable("this node has no SFU")

    async def room_stats(self, room_id: RoomId) -> RoomStats:
        return RoomStats(room_id, 0, 0)
