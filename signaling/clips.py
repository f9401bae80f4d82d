"""``clip.save``: a moderator saves the last seconds of an SFU room as evidence, and the node hands
the file to the control API through Redis (realtime planes never touch Postgres).

The control API may ask too (a moderator's "save clip" in the console, a report on a session):
it publishes ``{"clip_id", "room", "moderator", "report_id"?}`` on ``keyspace.CLIPS_CHANNEL``
(``moderator`` is empty for a report's own clip); every node answers on
``keyspace.clip_answers(id)``: ``saved`` (its SFU had the room; the clip is handed over under that
id, with the ``report_id`` when given), ``absent``, or ``taken``. A call whose parties are on two
nodes is in both SFUs, each with every track of the call (the far party's tracks pulled through a
pipe keep a clip buffer too: :meth:`sfu.types.MediaService.open_node_pipe`), so both make a whole
clip; the first to claim ``keyspace.clip_owner(id)`` hands it over, the other answers ``taken``.
A show's edges and a tap's node keep no buffer of what they pull: they answer ``absent``.

The SFU remuxes the room's buffered RTP into one file (:meth:`sfu.types.MediaService.save_clip`);
this desk leaves it in the Redis hash ``keyspace.clip(id)`` (TTL ``keyspace.CLIP_TTL_S``) and
pushes the id on ``keyspace.CLIPS_PENDING``, in one transaction (one pipeline on a cluster). The
control API stores it (its Storage, a ``clips`` row) and serves it to staff at ``/api/moderation/clips/{id}/file``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from sfu.clips import Clip
from sfu.errors import NoClip, UnknownRoom
from sfu.types import MediaService
from signaling.errors import Forbidden, NotFound, Unavailable
from signaling.session import Session
from switchboard import keyspace, redis_client
from switchboard.ids import RoomId
from switchboard.tasks import stop_task

log = logging.getLogger(__name__)
ANSWER_TTL_S = 60


class ClipDesk:
    """One per node."""

    def __init__(self, media: MediaService, redis: Redis, node_id: str = "") -> None:
        self._media = media
        self._redis = redis
        self._node_id = node_id
        """Written in ``keyspace.clip_owner`` when this node hands a requested clip over."""
        self._pubsub: PubSub | None = None
        self._task: asyncio.Task[None] | None = None
        self._jobs: set[asyncio.Task[None]] = set()

    async def save(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        """Moderators: the room's last seconds in one file; replies with the clip's id (nothing is
        stored when the room has no media through this node's SFU)."""
        if not session.grants.moderate:
            raise Forbidden("this needs a token with the moderate grant")
        room = RoomId(body["room"])
        try:
            clip = await self._media.save_clip(room)
        except (UnknownRoom, NoClip):
            raise NotFound(f"room {room!r} has no media through this node's SFU (a peer-to-peer call, "
                           "a room on another node, or nothing published yet): no clip was saved") from None
        clip_id = uuid.uuid4().hex
        await self._hand_over(clip_id, clip, room, session.user_id)
        duration_ms = int(clip.duration_s * 1000)
        return {"clip_id": clip_id, "room": room, "content_type": clip.content_type, "duration_ms": duration_ms,
                "size": len(clip.data), "tracks": clip.tracks}

    async def _hand_over(self, clip_id: str, clip: Clip, room: str, moderator: str,
                         report_id: int | None = None) -> None:
        key = keyspace.clip(clip_id)
        fields: dict[str, bytes | str | int] = {
            "data": clip.data, "content_type": clip.content_type, "room": room, "moderator": moderator,
            "duration_ms": int(clip.duration_s * 1000), "tracks": clip.tracks,
            "created_ms": int(time.time() * 1000),
        }
        if report_id is not None:
            fields["report_id"] = report_id
        async with redis_client.atomic_pipeline(self._redis) as pipe:
            pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
            pipe.expire(key, keyspace.CLIP_TTL_S)
            pipe.lpush(keyspace.CLIPS_PENDING, clip_id)
            await pipe.execute()

    # requests from the control API ------------------------------------------------------------

    async def start(self) -> None:
        """Listen to the API's clip requests: subscribed on return when Redis is up; when it is down
        the node starts anyway (its readiness says so) and the listener subscribes once it is back."""
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        with contextlib.suppress(RedisError, OSError):
            await redis_client.ready(self._redis)
            await self._pubsub.subscribe(keyspace.CLIPS_CHANNEL)
        self._task = asyncio.create_task(self._listen())

    async def close(self) -> None:
        """Stop listening and cancel answers in flight (the API times out on them). Idempotent."""
        task, self._task = self._task, None
        if task is not None:
            await stop_task(task)
        for job in list(self._jobs):
            await stop_task(job)
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def _listen(self) -> None:
        pubsub = self._pubsub
        assert pubsub is not None
        down = False
        while True:
            try:
                if not pubsub.subscribed:
                    await redis_client.ready(self._redis)
                    await pubsub.subscribe(keyspace.CLIPS_CHANNEL)
                message = await pubsub.get_message(timeout=1.0)
                down = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: retry each second (the API's requests time out meanwhile)
                if not down:
                    log.warning("clip requests: Redis unavailable (%s); retrying", exc)
                down = True
                await asyncio.sleep(1)
                continue
            if message is None or message.get("type") != "message":
                continue
            job = asyncio.create_task(self._answer(message["data"]))
            self._jobs.add(job)
            job.add_done_callback(self._jobs.discard)

    async def _answer(self, raw: bytes | str) -> None:
        try:
            request = json.loads(raw)
            clip_id, room, moderator = request["clip_id"], request["room"], request["moderator"]
            report_id = request.get("report_id")
            if not all(isinstance(v, str) and 0 < len(v) <= 200 for v in (clip_id, room)):
                raise ValueError("bad field")
            if not isinstance(moderator, str) or len(moderator) > 200:
                raise ValueError("bad moderator")
            if report_id is not None and not (type(report_id) is int and 0 < report_id < 2**63):
                raise ValueError("bad report_id")
        except (ValueError, KeyError, TypeError):
            log.warning("clip request dropped: malformed")
            return
        answer = "absent"
        try:
            clip = await self._media.save_clip(RoomId(room))
        except (UnknownRoom, NoClip, Unavailable) as exc:
            log.info("clip %s of room %s: absent (%s)", clip_id, room, exc)
        except Exception:  # a worker lost, a remux bug: this node cannot give the clip; it says absent
            log.exception("clip of room %s failed", room)
        else:
            if await self._redis.set(keyspace.clip_owner(clip_id), self._node_id or "node", nx=True,
                                     ex=ANSWER_TTL_S):
                await self._hand_over(clip_id, clip, room, moderator, report_id)
                answer = "saved"
                log.info("clip %s of room %s: saved (%d bytes, %.1f s, %d tracks)", clip_id, room, len(clip.data),
                         clip.duration_s, clip.tracks)
            else:  # the call's other node made it first (it has every track too)
                answer = "taken"
                log.info("clip %s of room %s: taken by another node", clip_id, room)
        key = keyspace.clip_answers(clip_id)
        async with redis_client.atomic_pipeline(self._redis) as pipe:
            pipe.lpush(key, answer)
            pipe.expire(key, ANSWER_TTL_S)
            await pipe.execute()
