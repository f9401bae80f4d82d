"""aiortc glue shared by shows and calls: a peer connection on the node's ICE servers, offer/answer
steps (aiortc gathers every candidate before the description is set, so nothing is trickled), and
the remote tracks as they arrive."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.sdp import candidate_from_sdp

from switchboard_client.errors import ClosedError


def configuration(ice_servers: list[dict[str, Any]]) -> RTCConfiguration:
    """``hello``'s ``ice_servers`` as an aiortc configuration."""
    return RTCConfiguration([RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
                             for s in ice_servers])


class Peer:
    """One RTCPeerConnection and the remote tracks it received. ``close()`` is idempotent."""

    def __init__(self, ice_servers: list[dict[str, Any]]) -> None:
        self.pc = RTCPeerConnection(configuration(ice_servers))
        self.tracks: list[MediaStreamTrack] = []
        """Remote tracks, in arrival order."""
        self.media = asyncio.Event()
        """Set once this peer connection's first media arrived: the first frame of a track a viewing
        relays (:meth:`~switchboard_client.show.Viewing.track`), or the first RTP packet its
        ``getStats()`` counts. A caller that counts media its own way (never decoding) sets it itself.
        A viewing moved by a drain closes its old peer connection once its new one has it set."""
        self._arrived = asyncio.Event()
        self._watchers: list[Callable[[MediaStreamTrack], None]] = []
        self._lock = asyncio.Lock()
        self._closed = False
        self._closing: asyncio.Future[None] | None = None
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        self.tracks.append(track)
        self._arrived.set()
        for watcher in list(self._watchers):
            watcher(track)

    def watch_tracks(self, watcher: Callable[[MediaStreamTrack], None]) -> None:
        """Calls ``watcher`` with each remote track: those already here, then each as it arrives (a
        renegotiation adds one when the broadcaster published again on this node)."""
        for track in list(self.tracks):
            watcher(track)
        self._watchers.append(watcher)

    @property
    def closed(self) -> bool:
        return self._closed

    def add_tracks(self, tracks: list[MediaStreamTrack]) -> None:
        for track in tracks:
            self.pc.addTrack(track)

    async def offer(self) -> str:
        """A local offer with all its candidates."""
        self._check()
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def accept_answer(self, sdp: str) -> None:
        self._check()
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    async def answer(self, offer_sdp: str) -> str:
        """Applies a remote offer (first or renegotiation) and returns the local answer."""
        self._check()
        async with self._lock:  # offers from the server are answered one at a time, in order
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            await self.pc.setLocalDescription(await self.pc.createAnswer())
            return self.pc.localDescription.sdp

    async def add_candidate(self, candidate: dict[str, Any] | None) -> None:
        """A trickled remote candidate (``{"candidate", "sdpMid", "sdpMLineIndex"}``); ``None`` ends them."""
        if candidate is None or not candidate.get("candidate") or self._closed:
            return
        ice = candidate_from_sdp(candidate["candidate"].removeprefix("candidate:"))
        ice.sdpMid = candidate.get("sdpMid")
        ice.sdpMLineIndex = candidate.get("sdpMLineIndex")
        with contextlib.suppress(ValueError):  # a candidate for a section we do not have
            await self.pc.addIceCandidate(ice)

    async def track(self, kind: str) -> MediaStreamTrack:
        """The first remote track of ``kind`` (``video`` or ``audio``), waiting for it."""
        while True:
            for track in self.tracks:
                if track.kind == kind:
                    return track
            self._check()
            self._arrived.clear()
            await self._arrived.wait()

    async def close(self) -> None:
        # Once, to the end, whoever asks and even if they are cancelled meanwhile: a cancelled
        # RTCPeerConnection.close() leaves sockets open and breaks aiortc's own closing.
        if self._closing is None:
            self._closed = True
            self._arrived.set()
            self._closing = asyncio.ensure_future(self.pc.close())
        await asyncio.shield(self._closing)

    def _check(self) -> None:
        if self._closed:
            raise ClosedError("the peer connection is closed")
