"""Real aiortc client peers for SFU tests: a publisher of moving VP8 frames + Opus, and viewers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import numpy as np
from aiortc import AudioStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from sfu.types import MediaService, PeerId
from switchboard.ids import RoomId, UserId


class MovingVideo(VideoStreamTrack):
    """640x480 frames with a bar that moves, so decoded frames differ."""

    def __init__(self, width: int = 640, height: int = 480) -> None:
        super().__init__()
        self.width, self.height = width, height
        self.n = 0

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        img = np.zeros((self.height, self.width, 3), np.uint8)
        x = (self.n * 8) % self.width
        img[:, x : x + 16] = (255, 128, 0)
        img[(self.n * 4) % self.height, :] = 255
        self.n += 1
        frame = VideoFrame.from_ndarray(img, format="bgr24")
        frame.pts, frame.time_base = pts, time_base
        return frame


def client_pc() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


async def start_publisher(sfu: MediaService, room: RoomId, peer: str, *, audio: bool = True,
                          size: tuple[int, int] = (640, 480)) -> RTCPeerConnection:
    pc = client_pc()
    pc.addTrack(MovingVideo(*size))
    if audio:
        pc.addTrack(AudioStreamTrack())
    await pc.setLocalDescription(await pc.createOffer())
    answer = await sfu.publish(room, PeerId(peer), UserId(f"user-{peer}"), pc.localDescription.sdp)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return pc


@dataclass
class Viewer:
    """A subscriber that decodes what it gets and records when."""

    pc: RTCPeerConnection
    started: float = field(default_factory=time.monotonic)
    frames: dict[str, int] = field(default_factory=lambda: {"video": 0, "audio": 0})
    first_frame_at: float | None = None
    distinct: set[int] = field(default_factory=set)
    sizes: set[tuple[int, int]] = field(default_factory=set)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def _pull(self, track) -> None:  # type: ignore[no-untyped-def]
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                frame = await track.recv()
                self.frames[track.kind] += 1
                if track.kind == "video":
                    if self.first_frame_at is None:
                        self.first_frame_at = time.monotonic()
                    self.sizes.add((frame.width, frame.height))
                    if self.frames["video"] % 5 == 0:
                        # where the moving bar is: the brightest column band of the decoded frame
                        gray = frame.to_ndarray(format="gray")
                        self.distinct.add(int(gray.mean(axis=0).argmax()) // 8)

    async def wait_frames(self, n: int, timeout: float) -> None:  # noqa: ASYNC109
        async def until() -> None:
            while self.frames["video"] < n:  # noqa: ASYNC110 (polls a counter the track task bumps)
                await asyncio.sleep(0.05)
        await asyncio.wait_for(until(), timeout)

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.pc.close()


async def answer_offer(viewer: Viewer, offer: str) -> str:
    await viewer.pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
    await viewer.pc.setLocalDescription(await viewer.pc.createAnswer())
    return viewer.pc.localDescription.sdp


async def start_viewer(sfu: MediaService, room: RoomId, peer: str, *, hidden: bool = False) -> Viewer:
    viewer = Viewer(client_pc())

    @viewer.pc.on("track")
    def on_track(track) -> None:  # type: ignore[no-untyped-def]
        viewer.tasks.append(asyncio.ensure_future(viewer._pull(track)))

    offer = await sfu.subscribe(room, PeerId(peer), UserId(f"user-{peer}"), hidden=hidden)
    await sfu.accept_answer(room, PeerId(peer), await answer_offer(viewer, offer))
    return viewer
