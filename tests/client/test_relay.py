"""The relay behind ``Viewing.track()`` (switchboard_client/relay.py), on in-memory tracks.

Each source here is a track whose frames the test hands over one at a time, standing in for a peer
connection's remote track: what is checked is which frames reach the consumers, in which order.
"""

from __future__ import annotations

import asyncio

import pytest
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from switchboard_client.peer import Peer
from switchboard_client.relay import TrackRelay


class Source(MediaStreamTrack):
    """A remote track stand-in: ``give()`` makes the next frame (its ``pts`` the number given)."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self._queue: asyncio.Queue[VideoFrame | None] = asyncio.Queue()

    def give(self, pts: int) -> None:
        frame = VideoFrame(16, 16)
        frame.pts = pts
        self._queue.put_nowait(frame)

    def end(self) -> None:
        self._queue.put_nowait(None)

    async def recv(self) -> VideoFrame:
        frame = await self._queue.get()
        if frame is None:
            raise MediaStreamError
        return frame


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def drain(track: MediaStreamTrack, count: int) -> list[tuple[int | None, int]]:
    out = []
    for _ in range(count):
        frame = await asyncio.wait_for(track.recv(), 5)
        out.append((frame.pts, track.generation))  # type: ignore[attr-defined]
    return out


async def test_the_old_source_plays_until_the_new_one_gives_its_first_frame() -> None:
    relay = TrackRelay("video")
    first, second = Peer([]), Peer([])
    old, new = Source(), Source()
    try:
        mine = relay.track()
        relay.follow(old, first)
        old.give(1)
        old.give(2)
        await settle()
        relay.follow(new, second)  # a move: the new connection's track arrives, its frames do not yet
        old.give(3)
        await settle()
        late = relay.track()  # a consumer that came meanwhile gets frames from now on
        old.give(4)
        await settle()
        assert not second.media.is_set() and first.media.is_set()
        new.give(100)
        await settle()
        old.give(5)  # no longer read: the new source took over at its first frame
        new.give(101)
        await settle()
        assert second.media.is_set()
        assert await drain(mine, 6) == [(1, 0), (2, 0), (3, 0), (4, 0), (100, 1), (101, 1)]
        assert await drain(late, 3) == [(4, 0), (100, 1), (101, 1)]
        old.end()  # the old connection closes: nothing changes for the consumers
        new.give(102)
        assert await drain(mine, 1) == [(102, 1)]
    finally:
        await relay.close()
        await first.close()
        await second.close()
    assert await drain(late, 1) == [(102, 1)]  # what was queued before the close is still given
    for consumer in (mine, late):
        with pytest.raises(MediaStreamError):  # the viewing closed: every consumer's track ends
            await consumer.recv()


async def test_consumers_wait_through_a_gap_and_end_with_the_relay() -> None:
    """A lost node: the old source ends before the new one exists; a consumer waits, never ends."""
    relay = TrackRelay("video")
    first, second = Peer([]), Peer([])
    old, new = Source(), Source()
    mine = relay.track()
    relay.follow(old, first)
    old.give(1)
    assert await drain(mine, 1) == [(1, 0)]
    old.end()
    waiting = asyncio.ensure_future(mine.recv())
    await settle()
    assert not waiting.done()
    relay.follow(new, second)
    new.give(7)
    assert (await asyncio.wait_for(waiting, 5)).pts == 7 and mine.generation == 1  # type: ignore[attr-defined]
    stopped = relay.track()
    stopped.stop()  # a consumer that stops gets nothing more, the others go on
    new.give(8)
    assert await drain(mine, 1) == [(8, 1)]
    await relay.close()
    await relay.close()  # idempotent
    with pytest.raises(MediaStreamError):
        await mine.recv()
    with pytest.raises(MediaStreamError):
        await relay.track().recv()  # a track asked after the close ends at once
    await first.close()
    await second.close()
