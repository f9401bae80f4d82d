"""``clip.save`` over /ws: a show with a real aiortc publisher and viewer through the real SFU; a
moderator saves a clip, the node hands it to Redis for the control API, and the file checks out
with PyAV. A non-moderator and a room without SFU media get errors and nothing is stored."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiortc import AudioStreamTrack, RTCSessionDescription

from sfu.clips import Clip
from sfu.events import RedisEventSink
from sfu.worker import Worker
from signaling.clips import ClipDesk
from switchboard import keyspace
from switchboard.ids import RoomId
from tests.control_api.test_clips import OneClipMedia
from tests.sfu.peers import MovingVideo, Viewer, client_pc
from tests.sfu.test_clips import CLIP_S, INTERVAL_S, check_clip
from tests.signaling.conftest import NodeFactory
from tests.signaling.test_show_media import ROOM, subscribe_over_ws


async def test_a_moderator_saves_a_clip_of_a_live_show(make_node: NodeFactory, token: Callable[..., str],
                                                       redis: Any) -> None:
    workers: list[Worker] = []

    @contextlib.asynccontextmanager
    async def open_media(r: Any) -> AsyncIterator[Worker]:
        worker = Worker(addresses=("127.0.0.1",), events=RedisEventSink(r), clip_seconds=CLIP_S,
                        keyframe_interval_s=INTERVAL_S)
        workers.append(worker)
        await worker.start()
        try:
            yield worker
        finally:
            await worker.close()

    node = await make_node(open_media=open_media)
    host = await node.connect(token("caster", ROOM, publish=True, verified=True))
    await host.ok("show.create")
    pc = client_pc()
    pc.addTrack(MovingVideo(320, 240))
    pc.addTrack(AudioStreamTrack())
    await pc.setLocalDescription(await pc.createOffer())
    answer = (await host.ok("show.publish", room=ROOM, sdp=pc.localDescription.sdp))["sdp"]
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    viewers: list[Viewer] = []
    try:
        async with asyncio.timeout(20):
            while len(workers[0].routers[RoomId(ROOM)].producers) < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        fan = await node.connect(token("fan", ROOM, subscribe=True))
        await fan.ok("show.join", room=ROOM)
        viewers.append(await subscribe_over_ws(fan))
        await viewers[0].wait_frames(5, timeout=30)
        mod = await node.connect(token("mod", moderate=True, hidden=True))
        assert (await fan.request("clip.save", room=ROOM))["code"] == "forbidden"
        error = await mod.request("clip.save", room="call_never_through_the_sfu")
        assert error["code"] == "not_found" and "no clip was saved" in error["message"]
        assert await redis.llen(keyspace.CLIPS_PENDING) == 0 and not await redis.keys("clip:*")

        await asyncio.sleep(CLIP_S + 2 * INTERVAL_S)
        reply = await mod.ok("clip.save", room=ROOM)
        clip_id = reply["clip_id"]
        assert reply["content_type"] == "video/webm" and reply["tracks"] == 2
        assert await redis.lrange(keyspace.CLIPS_PENDING, 0, -1) == [clip_id.encode()]
        stored = await redis.hgetall(keyspace.clip(clip_id))
        assert stored[b"room"] == ROOM.encode() and stored[b"moderator"] == b"mod"
        assert 0 < await redis.ttl(keyspace.clip(clip_id)) <= keyspace.CLIP_TTL_S
        clip = Clip(stored[b"data"], stored[b"content_type"].decode(), int(stored[b"duration_ms"]) / 1000, 2, 0)
        check_clip(clip, "vp8", CLIP_S)
        assert not [m for m in fan.seen + host.seen if "clip" in str(m)], "the parties see nothing"
    finally:
        for viewer in viewers:
            await viewer.close()
        await pc.close()


async def test_two_nodes_with_the_room_hand_over_one_clip(redis: Any) -> None:
    """A call across two nodes is in both SFUs, each with every track: both answer a request, the first
    to claim ``keyspace.clip_owner`` hands its file over, the other answers ``taken``."""
    desks = [ClipDesk(OneClipMedia(), redis, f"node_{i}") for i in range(2)]  # type: ignore[arg-type]
    clip_id = "c" * 32
    request = json.dumps({"clip_id": clip_id, "room": "show-evidence", "moderator": ""})
    await asyncio.gather(*(desk._answer(request) for desk in desks))
    answers = sorted(a.decode() for a in await redis.lrange(keyspace.clip_answers(clip_id), 0, -1))
    assert answers == ["saved", "taken"]
    assert await redis.lrange(keyspace.CLIPS_PENDING, 0, -1) == [clip_id.encode()]
    assert (await redis.get(keyspace.clip_owner(clip_id))).decode() in ("node_0", "node_1")
    await redis.delete(keyspace.CLIPS_PENDING, keyspace.clip(clip_id), keyspace.clip_owner(clip_id),
                       keyspace.clip_answers(clip_id))
