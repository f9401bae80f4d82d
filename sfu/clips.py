"""Evidence clips: each producer's rolling buffer of its last seconds of RTP, and a room's snapshot.

A :class:`ClipBuffer` holds the same ``(seq, ts, marker, payload)`` entries the producer's NACK
cache holds (the payload is the same ``bytes`` object: nothing is copied), plus their arrival
time. A video buffer starts at a keyframe and is trimmed only at keyframes, so it always begins
with one: the router's keyframe schedule (:mod:`sfu.keyframes`) guarantees one every
``sfu.keyframe_interval_s``, so a buffer holds between ``seconds + interval / 2`` and ``seconds + 1.5 x interval`` of
media. Memory is also capped in bytes (``MAX_BYTES_PER_S`` x horizon), whatever the publisher sends.

The clock is injectable so tests (and the bench) can drive it. :func:`window` picks where a clip
starts and stops within the buffered media.

:func:`snapshot` copies a room's buffers (cheap: a list of references per track) for
:mod:`sfu.remux` to turn into one file off the event loop.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sfu.producer import Producer

Entry = tuple[float, int, int, int, bytes]
"""(arrival on the buffer's clock, sequence, RTP timestamp, marker, payload)."""

SHORTER_S = 2.0
"""A clip of ``seconds`` lasts at least ``seconds - SHORTER_S`` (when that much is buffered)."""
LONGER_S = 1.0
"""... and at most ``seconds + LONGER_S``: with a 30 s clip, 28-31 s (the issue's bounds)."""
LAST_FRAME_S = 0.05
"""Room left for the last frame's own duration, which a container adds to the last timestamp."""

MAX_BYTES_PER_S = 1_000_000
"""Byte cap per second of horizon (8 Mbit/s): a publisher sending more keeps a shorter buffer."""


class ClipBuffer:
    """The last ``seconds`` of one track, trimmed at keyframes (video) or by age (audio)."""

    def __init__(self, seconds: float, keyframe_interval_s: float,
                 is_keyframe: Callable[[bytes], bool] | None, clock: Callable[[], float] = time.monotonic) -> None:
        if seconds <= 0:
            raise ValueError("clip seconds must be > 0")
        self.seconds = seconds
        self.horizon = seconds + keyframe_interval_s / 2
        """What we must keep: the clip starts at the keyframe nearest to ``seconds`` ago, so at most
        half an interval before it."""
        self.max_bytes = int(MAX_BYTES_PER_S * (seconds + 2 * keyframe_interval_s))
        self.is_keyframe = is_keyframe
        self.clock = clock
        self.entries: deque[Entry] = deque()
        self.starts: deque[tuple[float, int, int]] = deque()
        """Keyframe starts: (arrival, absolute index of the entry, RTP timestamp)."""
        self.first = 0
        """Absolute index of ``entries[0]``."""
        self.bytes = 0
        self.shed = 0
        """Entries dropped because the byte cap was reached."""
        self._last_ts = -1
        self._live = False
        """Video: a keyframe started the buffer (packets before the first one are useless)."""

    def add(self, seq: int, ts: int, marker: int, payload: bytes) -> None:
        """On the producer's hot path: one tuple and a deque append per packet; the rest (keyframe
        test, trimming, byte cap) once per frame, when the timestamp changes."""
        now = self.clock()
        if ts != self._last_ts:
            self._frame(now, ts, payload)
            if not self._live:
                return
        self.entries.append((now, seq, ts, marker, payload))
        self.bytes += len(payload)

    def _frame(self, now: float, ts: int, payload: bytes) -> None:
        """A frame's first packet (audio: every packet). H.264's SPS and IDR packets of one frame
        share its timestamp, so they make one keyframe start."""
        self._last_ts = ts
        entries = self.entries
        if self.bytes > self.max_bytes:
            self._shed()
        if self.is_keyframe is None:
            self._live = True
            edge = now - self.horizon
            while entries and entries[0][0] < edge:
                self.bytes -= len(entries.popleft()[4])
                self.first += 1
        elif self.is_keyframe(payload):
            self.starts.append((now, self.first + len(entries), ts))
            self._live = True
            self._trim_to_keyframe(now - self.horizon)

    def _drop_to(self, index: int) -> None:
        entries = self.entries
        while self.first < index and entries:
            self.bytes -= len(entries.popleft()[4])
            self.first += 1

    def _trim_to_keyframe(self, edge: float) -> None:
        """Drop whole keyframe periods that ended before ``edge`` (the buffer keeps one start <= edge)."""
        starts = self.starts
        while len(starts) >= 2 and starts[1][0] <= edge:
            starts.popleft()
            self._drop_to(starts[0][1])

    def _shed(self) -> None:
        """Over the byte cap: drop the oldest keyframe period (video) or the oldest tenth (audio)."""
        before = self.first
        if self.is_keyframe is None:
            self._drop_to(self.first + max(1, len(self.entries) // 10))
        elif len(self.starts) >= 2:
            self.starts.popleft()
            self._drop_to(self.starts[0][1])
        else:  # one keyframe period bigger than the cap: start again at the next keyframe
            self._drop_to(self.first + len(self.entries))
            self.starts.clear()
            self._live = False
        self.shed += self.first - before

    def snapshot(self) -> list[Entry]:
        return list(self.entries)

    def clear(self) -> None:
        self.entries.clear()
        self.starts.clear()
        self.bytes = 0
        self._live = False


def window(keyframes: list[float], end: float, seconds: float) -> tuple[float, float]:
    """Where a clip of ``seconds`` ending at ``end`` starts and stops, given the first video track's
    keyframe times (all on one clock; none: audio only).

    It starts at the keyframe nearest to ``end - seconds`` among those at least ``seconds - SHORTER_S``
    before the end, so it is never too short; when that keyframe is more than ``seconds + LONGER_S``
    back (a keyframe every 4 s puts the nearest one up to 2 s away), the clip stops early instead:
    its last fraction of a second is dropped so that the duration stays within bounds whatever the
    keyframe phase. With too little buffered (a session younger than the clip), it starts at the
    first keyframe and is shorter. Every track is cut to the same ``[start, stop]``.
    """
    target = end - seconds
    longest = seconds + LONGER_S - LAST_FRAME_S
    if not keyframes:
        return target, end
    early = [k for k in keyframes if k <= end - (seconds - SHORTER_S)]
    start = min(early, key=lambda k: abs(k - target)) if early else min(keyframes)
    return start, min(end, start + longest)


@dataclass(frozen=True)
class Clip:
    """An evidence clip: one media file with the last seconds of every track of a room."""

    data: bytes
    content_type: str
    """``video/webm`` or ``video/x-matroska``."""
    duration_s: float
    tracks: int
    drops: int
    """Frames/packets skipped (malformed, incomplete, or waiting for a keyframe)."""


@dataclass(frozen=True)
class TrackSnapshot:
    """One track's buffered RTP and what is needed to time it."""

    producer_id: str
    peer_id: str
    kind: str
    mime_type: str
    clock_rate: int
    channels: int
    entries: list[Entry]
    sender_report: tuple[int, int, float] | None
    """The publisher's last SR: (NTP, RTP timestamp, arrival on the buffer's clock)."""


def snapshot(producers: list[Producer]) -> list[TrackSnapshot]:
    """The buffered tracks of these producers (those without a buffer or with nothing in it are left out)."""
    tracks = []
    for p in producers:
        buffer = p.clip
        if buffer is None or not buffer.entries:
            continue
        tracks.append(TrackSnapshot(p.producer_id, str(p.peer_id), p.kind, p.codec.mime_type, p.codec.clock_rate,
                                    p.codec.channels or 2, buffer.snapshot(), p.sr))
    return tracks
