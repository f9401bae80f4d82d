"""An evidence clip of a call whose parties are on two ``switchboard node`` processes: real aiortc
parties publish camera and microphone, each node pulls the other's party through a sealed pipe (and
keeps a clip buffer of it), a moderator's "save clip" through the control API, and a party's report
on the call, each get one file with both parties' video and audio, checked with PyAV. The clip length
is scaled down as in tests/sfu/test_clips.py."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import av
from aiortc import AudioStreamTrack, RTCPeerConnection, RTCSessionDescription

from sfu.clips import LONGER_S, SHORTER_S
from switchboard import keyspace
from tests.control_api.conftest import Api, aiohttp_client, conformance, make_api  # noqa: F401  (fixtures)
from tests.control_api.test_clips import _linked, staff
from tests.sfu.peers import MovingVideo, Viewer, client_pc
from tests.sfu.test_clips import CLIP_S, INTERVAL_S
from tests.signaling.conftest import Peer, befriend
from tests.signaling.node_processes import node_starter  # noqa: F401 (the start_node fixture)
from tests.signaling.test_cascade import SECRET, STEP_S, call_viewer

SETTINGS = {"SWITCHBOARD_CASCADE_SECRET": SECRET, "SWITCHBOARD_NODE_CALL_MEDIA": "sfu",
            "SWITCHBOARD_SFU_CLIP_SECONDS": str(CLIP_S), "SWITCHBOARD_SFU_KEYFRAME_INTERVAL_S": str(INTERVAL_S)}


async def publish(party: Peer, call_id: str) -> RTCPeerConnection:
    """A party's camera and microphone into the call's room on its node."""
    pc = client_pc()
    pc.addTrack(MovingVideo(320, 240))
    pc.addTrack(AudioStreamTrack())
    await pc.setLocalDescription(await pc.createOffer())
    answer = (await party.ok("call.publish", call_id=call_id, sdp=pc.localDescription.sdp))["sdp"]
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return pc


def check_call_clip(data: bytes, duration_s: float) -> None:
    """Two VP8 and two Opus tracks; each video starts at a keyframe; every frame decodes; the clip's
    duration and each track's span within the clip bounds (a party's video may start up to a keyframe
    interval after the clip's start: the clip starts at a keyframe of the first video only)."""
    low, high = CLIP_S - SHORTER_S, CLIP_S + LONGER_S
    assert low <= duration_s <= high, duration_s
    with av.open(io.BytesIO(data)) as container:
        videos, audios = list(container.streams.video), list(container.streams.audio)
        assert [v.codec_context.name for v in videos] == ["vp8", "vp8"]
        assert [a.codec_context.name for a in audios] == ["opus", "opus"]
        if container.duration is not None:
            assert low <= container.duration / av.time_base <= high, container.duration
        firsts: dict[int, float] = {}
        lasts: dict[int, float] = {}
        tracks = [s.index for s in videos + audios]
        decoded = dict.fromkeys(tracks, 0)
        for packet in container.demux(*videos, *audios):
            if packet.size == 0:
                continue
            i, t = packet.stream.index, float(packet.pts * packet.time_base)
            if i not in firsts:
                firsts[i] = t
                if packet.stream.type == "video":
                    assert packet.is_keyframe, f"track {i}: the first video frame is a keyframe"
            lasts[i] = t
            for _ in packet.decode():  # raises on a frame that does not decode
                decoded[i] += 1
    for i in tracks:
        assert decoded[i] > CLIP_S * 5, (i, decoded)
        assert low - INTERVAL_S - 0.1 <= lasts[i] - firsts[i] <= high, (i, firsts, lasts)


async def test_a_clip_of_a_call_across_two_nodes_has_both_parties(
        start_node: Callable[..., Any], token: Callable[..., str], redis: Any,
        make_api: Callable[..., Awaitable[Api]]) -> None:  # noqa: F811
    api = await make_api(consume_events=True)  # with the ingest loop: a report's clip is linked by it
    mod, amy_user, bob_user = await staff(api), await api.user(), await api.user()
    amy_id, bob_id = amy_user.id, bob_user.id
    await befriend(redis, amy_id, bob_id)
    a, b = await asyncio.gather(start_node(**SETTINGS), start_node(**SETTINGS))
    pcs: list[RTCPeerConnection] = []
    viewers: list[Viewer] = []
    async with aiohttp.ClientSession() as http:
        amy, bob = await a.connect(http, token(amy_id)), await b.connect(http, token(bob_id))
        call_id = (await amy.ok("call.invite", to=bob_id))["call_id"]
        await bob.expect("call.incoming", call_id=call_id)
        assert (await bob.ok("call.accept", call_id=call_id))["media"] == "sfu"
        assert (await amy.expect("call.accepted", call_id=call_id))["media"] == "sfu"  # A has the call now
        try:
            pcs += [await publish(amy, call_id), await publish(bob, call_id)]
            viewers += [await call_viewer(amy, call_id, 1), await call_viewer(bob, call_id, 1)]
            for viewer in viewers:  # each decodes the other's camera, pulled from the other node
                await viewer.wait_frames(5, timeout=STEP_S)
            await asyncio.sleep(CLIP_S + 2 * INTERVAL_S)  # a whole clip's worth buffered on both nodes

            status, body = await api.call("POST", "/moderation/clips", mod, json={"room": call_id})
            assert status == 201, body
            assert (body["room"], body["tracks"], body["content_type"]) == (call_id, 4, "video/webm"), body
            resp = await api.client.get(body["url"], headers=mod.auth)
            assert resp.status == 200
            data = await resp.read()
            assert len(data) == body["size"]  # one node's file, whole (the other answered "taken")
            check_call_clip(data, body["duration_ms"] / 1000)
            assert not await redis.keys(keyspace.clip(body["id"]))  # stored, nothing left waiting

            # Bob reports the call: its own clip (one node hands it over) becomes the report's evidence.
            status, report = await api.call("POST", "/reports", bob_user, json={
                "user_id": amy_id, "session_id": call_id, "reason": "harassment"})
            assert status == 201, report
            seen = await _linked(api, mod, report["id"])
            status, own = await api.call("GET", f"/moderation/clips/{seen['clip']['id']}", mod)
            assert status == 200 and own["id"] != body["id"] and own["tracks"] == 4, own
            resp = await api.client.get(own["url"], headers=mod.auth)
            assert resp.status == 200
            check_call_clip(await resp.read(), own["duration_ms"] / 1000)

            # Each party's node has the whole call: a moderator's clip.save on either gets 4 tracks.
            for node in (a, b):
                watcher = await node.connect(http, token(f"mod{uuid.uuid4().hex[:8]}", moderate=True, hidden=True))
                reply = await watcher.ok("clip.save", room=call_id)
                assert reply["tracks"] == 4 and CLIP_S - SHORTER_S <= reply["duration_ms"] / 1000, reply
            await amy.ok("ping")
            await bob.ok("ping")
            assert not [m for m in amy.seen + bob.seen if "clip" in str(m)], "the parties see nothing"
        finally:
            for viewer in viewers:
                await viewer.close()
            for pc in pcs:
                await pc.close()
