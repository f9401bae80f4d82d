"""Evidence clips end to end: real aiortc publisher and viewer through the SFU, the clip checked with PyAV.

The clip length is scaled down (``CLIP_S`` with a keyframe every ``INTERVAL_S``) to keep CI fast; the
checks are the issue's: duration from 2 s shorter to 1 s longer than the clip length (28-31 s for
the unscaled 30 s test), the first video frame a keyframe, every frame decodes, audio and video start
within 100 ms.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

import av
import pytest
from aiortc import AudioStreamTrack, RTCRtpSender, RTCSessionDescription

from sfu.clips import LONGER_S, SHORTER_S
from sfu.errors import NoClip, UnknownRoom
from sfu.events import MemoryEventSink
from sfu.remux import Clip
from sfu.types import PeerId
from sfu.worker import Worker
from switchboard.ids import RoomId, UserId
from tests.sfu.peers import MovingVideo, client_pc, start_publisher, start_viewer
from tests.sfu.test_forwarding import wait_for

ROOM = RoomId("clips")
CLIP_S = 6.0
INTERVAL_S = 2.0


@pytest.fixture
async def worker() -> AsyncIterator[Worker]:
    w = Worker(addresses=("127.0.0.1",), events=MemoryEventSink(), clip_seconds=CLIP_S, keyframe_interval_s=INTERVAL_S)
    await w.start()
    await w.open_room(ROOM)
    yield w
    await w.close()


def check_clip(clip: Clip, video_codec: str, seconds: float) -> None:
    """The issue's checks on the file, with PyAV: codecs, duration (28-31 s for 30 s: ``seconds -
    SHORTER_S`` to ``seconds + LONGER_S``, in the file as well as in the node's answer), keyframe first,
    all frames decode, A/V start within 100 ms."""
    low, high = seconds - SHORTER_S, seconds + LONGER_S
    with av.open(io.BytesIO(clip.data)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert video.codec_context.name == video_codec and audio.codec_context.name == "opus"
        assert low <= clip.duration_s <= high, clip.duration_s
        if container.duration is not None:  # the Segment's Duration, as a player shows it
            assert low <= container.duration / av.time_base <= high, container.duration
        firsts: dict[str, float] = {}
        lasts: dict[str, float] = {}
        video_frames = 0
        for packet in container.demux(video, audio):
            if packet.size == 0:
                continue
            kind = packet.stream.type
            t = float(packet.pts * packet.time_base)
            if kind not in firsts:
                firsts[kind] = t
                if kind == "video":
                    assert packet.is_keyframe, "the first video frame is a keyframe"
            lasts[kind] = t
            for _ in packet.decode():  # raises on a frame that does not decode
                video_frames += kind == "video"
        assert video_frames > seconds * 10, video_frames
        assert abs(firsts["video"] - firsts["audio"]) <= 0.1, firsts
        for kind in ("video", "audio"):
            assert low - 0.1 <= lasts[kind] - firsts[kind] <= high, (kind, firsts, lasts)


async def test_vp8_opus_clip_is_a_webm_of_the_last_seconds(worker: Worker) -> None:
    pub = await start_publisher(worker, ROOM, "pub")
    await wait_for(lambda: len(worker.routers[ROOM].producers) == 2, 10)
    viewer = await start_viewer(worker, ROOM, "viewer")
    try:
        await viewer.wait_frames(10, timeout=20)
        await asyncio.sleep(CLIP_S + 2 * INTERVAL_S)
        clip = await worker.save_clip(ROOM)
        assert clip.content_type == "video/webm" and clip.tracks == 2
        check_clip(clip, "vp8", CLIP_S)
        router = worker.routers[ROOM]
        for p in router.producers.values():  # bounded: never much more than the horizon
            assert p.clip is not None and p.clip.entries[-1][0] - p.clip.entries[0][0] <= CLIP_S + 2 * INTERVAL_S + 1
    finally:
        await viewer.close()
        await pub.close()


async def test_h264_opus_clip_is_a_matroska(worker: Worker) -> None:
    pub = client_pc()
    transceiver = pub.addTransceiver(MovingVideo(), direction="sendonly")
    transceiver.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs
                                     if c.mimeType == "video/H264"])
    pub.addTrack(AudioStreamTrack())
    await pub.setLocalDescription(await pub.createOffer())
    answer = await worker.publish(ROOM, PeerId("pub"), UserId("u-pub"), pub.localDescription.sdp)
    await pub.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    await wait_for(lambda: len(worker.routers[ROOM].producers) == 2, 10)
    viewer = await start_viewer(worker, ROOM, "viewer")
    try:
        await viewer.wait_frames(10, timeout=20)
        await asyncio.sleep(CLIP_S + 2 * INTERVAL_S)
        clip = await worker.save_clip(ROOM)
        assert clip.content_type == "video/x-matroska"
        check_clip(clip, "h264", CLIP_S)
    finally:
        await viewer.close()
        await pub.close()


async def test_a_room_without_media_gives_no_clip(worker: Worker) -> None:
    with pytest.raises(NoClip):
        await worker.save_clip(ROOM)
    with pytest.raises(UnknownRoom):
        await worker.save_clip(RoomId("never-opened"))


async def test_clips_off_keeps_no_buffer() -> None:
    w = Worker(addresses=("127.0.0.1",), events=MemoryEventSink(), clip_seconds=0)
    await w.start()
    await w.open_room(ROOM)
    pub = await start_publisher(w, ROOM, "pub")
    try:
        await wait_for(lambda: len(w.routers[ROOM].producers) == 2, 10)
        assert all(p.clip is None for p in w.routers[ROOM].producers.values())
        with pytest.raises(NoClip, match="clips are off"):
            await w.save_clip(ROOM)
    finally:
        await pub.close()
        await w.close()


async def test_a_real_30_second_clip() -> None:
    """The issue's numbers unscaled: 30 s clips, a keyframe every 4 s (the defaults), VP8 + Opus.
    The clip starts at a keyframe near 30 s ago and lasts 28-31 s (:func:`sfu.clips.window`)."""
    w = Worker(addresses=("127.0.0.1",), events=MemoryEventSink(), clip_seconds=30.0)
    await w.start()
    await w.open_room(ROOM)
    pub = await start_publisher(w, ROOM, "pub", size=(320, 240))
    try:
        await wait_for(lambda: len(w.routers[ROOM].producers) == 2, 10)
        viewer = await start_viewer(w, ROOM, "viewer")
        try:
            await viewer.wait_frames(10, timeout=20)
            await asyncio.sleep(30 + 3)
            clip = await w.save_clip(ROOM)
        finally:
            await viewer.close()
        assert clip.content_type == "video/webm"
        check_clip(clip, "vp8", 30.0)
    finally:
        await pub.close()
        await w.close()


async def test_a_pool_makes_the_clip_on_the_rooms_home_worker() -> None:
    """Through worker processes: the clip's bytes come back over the pool's socket; errors keep their class."""
    from sfu.pool import WorkerPool

    pool = WorkerPool(workers=1, addresses=("127.0.0.1",), clip_seconds=CLIP_S, keyframe_interval_s=INTERVAL_S)
    await pool.start()
    try:
        await pool.open_room(ROOM)
        with pytest.raises(NoClip):
            await pool.save_clip(ROOM)
        pub = await start_publisher(pool, ROOM, "pub", size=(320, 240))
        try:
            await asyncio.sleep(CLIP_S + 2 * INTERVAL_S)
            clip = await pool.save_clip(ROOM)
        finally:
            await pub.close()
        assert clip.content_type == "video/webm" and clip.tracks == 2
        check_clip(clip, "vp8", CLIP_S)
    finally:
        await pool.close()
