"""Worker: one event loop's SFU (one core). Owns the routers of the rooms placed on it.

This is the in-process :class:`sfu.types.MediaService`; :mod:`sfu.pool` runs one per process.
"""

from __future__ import annotations

import asyncio
import contextlib

from sfu import aiortc_private
from sfu.pipe import Descriptor
from sfu.router import Router
from sfu.transport import DtlsCertificate
from sfu.types import EventSink, IceCandidate, PeerId, RoomStats, SfuListener
from switchboard.ids import RoomId, UserId

TICK_S = 1.0
"""Period of RTCP reports (SR/RR/REMB) and of keyframe re-requests for waiting consumers."""


class Worker:
    """``await start()`` then use; ``await close()`` closes every room (safe twice)."""

    def __init__(self, *, addresses: tuple[str, ...], announced: str = "", events: EventSink) -> None:
        aiortc_private.check_versions()
        self.addresses = addresses
        self.announced = announced
        self.events = events
        self.listener: SfuListener | None = None
        self.routers: dict[RoomId, Router] = {}
        self.certificate = DtlsCertificate()
        """One DTLS key and certificate for every peer connection of this worker."""
        self._ticker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick())

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        for room_id in list(self.routers):
            await self.close_room(room_id)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            for router in list(self.routers.values()):
                router.tick()

    def set_listener(self, listener: SfuListener | None) -> None:
        self.listener = listener
        for router in self.routers.values():
            router.listener = listener

    def router(self, room_id: RoomId) -> Router:
        router = self.routers.get(room_id)
        if router is None:
            router = Router(room_id, addresses=self.addresses, announced=self.announced, events=self.events,
                            listener=self.listener, certificate=self.certificate)
            self.routers[room_id] = router
        return router

    async def publish(self, room_id: RoomId, peer_id: PeerId, user_id: UserId, offer_sdp: str) -> str:
        return await self.router(room_id).publish(peer_id, user_id, offer_sdp)

    async def add_ice_candidate(self, room_id: RoomId, peer_id: PeerId, candidate: IceCandidate | None) -> None:
        await self.router(room_id).add_ice_candidate(peer_id, candidate)

    async def subscribe(self, room_id: RoomId, peer_id: PeerId, user_id: UserId, *, hidden: bool = False) -> str:
        return await self.router(room_id).subscribe(peer_id, user_id, hidden)

    async def accept_answer(self, room_id: RoomId, peer_id: PeerId, answer_sdp: str) -> None:
        await self.router(room_id).accept_answer(peer_id, answer_sdp)

    async def renegotiate(self, room_id: RoomId, peer_id: PeerId) -> str | None:
        return await self.router(room_id).renegotiate(peer_id)

    async def close_peer(self, room_id: RoomId, peer_id: PeerId) -> None:
        router = self.routers.get(room_id)
        if router is not None:
            await router.close_peer(peer_id)

    async def close_room(self, room_id: RoomId) -> None:
        router = self.routers.pop(room_id, None)
        if router is not None:
            await router.close()

    async def open_pipe(self, room_id: RoomId, pipe_id: str) -> int:
        return await self.router(room_id).open_pipe(pipe_id)

    async def connect_pipe(self, room_id: RoomId, pipe_id: str, port: int, export: bool,
                           descriptors: list[Descriptor] | None = None) -> list[Descriptor]:
        return self.router(room_id).connect_pipe(pipe_id, port, export, descriptors)

    async def close_pipe(self, room_id: RoomId, pipe_id: str) -> None:
        router = self.routers.get(room_id)
        if router is not None:
            router.close_pipe(pipe_id)

    async def room_stats(self, room_id: RoomId) -> RoomStats:
        router = self.routers.get(room_id)
        if router is None:
            return RoomStats(room_id=room_id, publishers=0, viewers=0)
        return router.stats()
