"""Media helpers for bots and load tests: a synthetic video source and a frame counter for a remote track."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import numpy as np
from aiortc import MediaStreamTrack, VideoStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame


class TestPattern(VideoStreamTrack):
    """Moving colour bars at 30 fps (small by default: bots and load tests should not spend CPU on pixels)."""

    __test__ = False  # not a pytest class

    def __init__(self, width: int = 160, height: int = 120) -> None:
        super().__init__()
        bars = np.array([[255, 255, 255], [255, 255, 0], [0, 255, 255], [0, 255, 0],
                         [255, 0, 255], [255, 0, 0], [0, 0, 255], [16, 16, 16]], dtype=np.uint8)
        row = np.repeat(bars, -(-width // len(bars)), axis=0)[:width]
        self._image = np.ascontiguousarray(np.broadcast_to(row, (height, width, 3)))
        self._step = max(1, width // 60)

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        shift = (pts // 3000 * self._step) % self._image.shape[1]
        frame = VideoFrame.from_ndarray(np.roll(self._image, shift, axis=1), format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        return frame


@dataclass
class FrameCount:
    """What a :class:`FrameCounter` saw."""

    frames: int = 0
    """Frames decoded."""
    first_frame_s: float | None = None
    """Seconds from the counter's start to the first frame."""
    width: int = 0
    height: int = 0
    times: list[float] = field(default_factory=list)
    """Monotonic arrival time of each frame (for fps over a window)."""

    def fps(self, window_s: float | None = None) -> float:
        """Frames per second over the last ``window_s`` seconds (all of them by default)."""
        times = self.times
        if window_s is not None and times:
            times = [t for t in times if t >= times[-1] - window_s]
        if len(times) < 2:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])


class FrameCounter:
    """Reads a remote video track in the background and counts its frames. ``close()`` is idempotent."""

    def __init__(self, track: MediaStreamTrack) -> None:
        self.track = track
        self.count = FrameCount()
        self._t0 = time.monotonic()
        self._first = asyncio.Event()
        self._task = asyncio.create_task(self._read(), name="switchboard_client.frame_counter")

    async def _read(self) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await self.track.recv()
                now = time.monotonic()
                count = self.count
                count.frames += 1
                count.times.append(now)
                if count.first_frame_s is None:
                    count.first_frame_s = now - self._t0
                    count.width, count.height = getattr(frame, "width", 0), getattr(frame, "height", 0)
                    self._first.set()

    async def first_frame(self) -> FrameCount:
        """Waits for the first frame (bound it with ``asyncio.timeout``)."""
        await self._first.wait()
        return self.count

    async def close(self) -> FrameCount:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        return self.count
