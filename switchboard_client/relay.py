"""A viewing's tracks as its consumers see them: one per kind, whichever peer connection feeds it.

A viewer's peer connection changes over a show's life (a drain's move, a lost node, a peer the node
closed); :meth:`~switchboard_client.show.Viewing.track` gives a :class:`RelayedTrack` that stays the
same object through all of them. Its :class:`TrackRelay` reads the current peer connection's remote
track and hands each frame to every relayed track. When a new peer connection's track arrives, the
relay reads it beside the old one and switches at its first decoded frame: the old track's frames
keep coming until then, so a drain's make-before-break move shows no gap. Across a switch a
consumer sees the new connection's timestamps (``pts`` starts again from another base) and may see
a different size; :attr:`RelayedTrack.generation` tells which connection a frame came from.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av.frame import Frame
from av.packet import Packet

from switchboard_client.peer import Peer

log = logging.getLogger("switchboard_client.relay")

Media = Frame | Packet
"""What a track's ``recv()`` gives."""
QUEUE_FRAMES = 60
"""Frames a relayed track keeps for a slow reader (2 s of 30 fps video); older ones are dropped."""


class RelayedTrack(MediaStreamTrack):
    """One consumer's copy of a viewing's ``kind`` frames. ``recv()`` raises ``MediaStreamError`` once
    the viewing (or this track, ``stop()``) ended; it waits, never raises, while the viewing moves."""

    def __init__(self, relay: TrackRelay) -> None:
        super().__init__()
        self.kind = relay.kind
        self._relay = relay
        self._queue: asyncio.Queue[tuple[Media, int] | None] = asyncio.Queue()
        self.generation = 0
        """Which of the viewing's peer connections the last frame came from (0: its first; each switch
        adds one)."""

    def put(self, frame: Media, generation: int) -> None:
        if self._queue.qsize() >= QUEUE_FRAMES:
            self._queue.get_nowait()
        self._queue.put_nowait((frame, generation))

    def end(self) -> None:
        self._queue.put_nowait(None)

    async def recv(self) -> Media:
        if self.readyState != "live":
            raise MediaStreamError
        item = await self._queue.get()
        if item is None:
            self._queue.put_nowait(None)
            raise MediaStreamError
        frame, self.generation = item
        return frame

    def stop(self) -> None:
        super().stop()
        self._relay.forget(self)
        self.end()


class TrackRelay:
    """The ``kind`` frames of a viewing's peer connections, to its relayed tracks. ``close()`` is idempotent."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._tracks: set[RelayedTrack] = set()
        self._source: MediaStreamTrack | None = None
        self._readers: dict[MediaStreamTrack, asyncio.Task[None]] = {}
        self._generation = -1
        self._offered = 0
        """Generations handed out to the tracks offered so far (the newest wins a race of first frames)."""
        self._closed = False

    def track(self) -> RelayedTrack:
        """A new consumer's track: the frames from now on."""
        relayed = RelayedTrack(self)
        if self._closed:
            relayed.end()
        else:
            self._tracks.add(relayed)
        return relayed

    def forget(self, relayed: RelayedTrack) -> None:
        self._tracks.discard(relayed)

    def follow(self, track: MediaStreamTrack, peer: Peer) -> None:
        """Reads ``track`` (``peer``'s remote track of this kind) from now on; its first frame makes it
        the source (the previous one is no longer read) and sets ``peer.media``. Once per track."""
        if self._closed or track in self._readers or track is self._source:
            return
        generation = self._offered
        self._offered += 1
        self._readers[track] = asyncio.get_running_loop().create_task(
            self._read(track, peer, generation), name=f"switchboard_client.relay.{self.kind}")

    async def _read(self, track: MediaStreamTrack, peer: Peer, generation: int) -> None:
        try:
            while True:
                frame = await track.recv()
                if track is not self._source:
                    if generation < self._generation:
                        return  # a newer connection took over first
                    self._switch(track, generation)
                    peer.media.set()
                for relayed in list(self._tracks):
                    relayed.put(frame, generation)
        except MediaStreamError:  # that connection closed: the consumers wait for the next one
            pass
        finally:
            if self._readers.get(track) is asyncio.current_task():
                del self._readers[track]

    def _switch(self, track: MediaStreamTrack, generation: int) -> None:
        old, self._source, self._generation = self._source, track, generation
        reader = self._readers.pop(old, None) if old is not None else None
        if reader is not None:
            reader.cancel()  # (an older candidate still waiting returns at its first frame)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in list(self._readers.values()):
            task.cancel()
        for task in list(self._readers.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._readers.clear()
        for relayed in list(self._tracks):
            relayed.end()
        self._tracks.clear()
