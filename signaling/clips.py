"""``clip.save``: a moderator saves the last seconds of an SFU room as evidence, and the node hands
the file to the control API through Redis (realtime planes never touch Postgres).

The SFU remuxes the room's buffered RTP into one file (:meth:`sfu.types.MediaService.save_clip`);
this desk leaves it in the Redis hash ``keyspace.clip(id)`` (TTL ``keyspace.CLIP_TTL_S``) and
pushes the id on ``keyspace.CLIPS_PENDING``, in one transaction. The control API stores it (its
Storage, a ``clips`` row) and serves it to staff at ``/api/moderation/clips/{id}/file``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from redis.asyncio import Redis

from sfu.errors import NoClip, UnknownRoom
from sfu.types import MediaService
from signaling.errors import Forbidden, NotFound
from signaling.session import Session
from switchboard import keyspace
from switchboard.ids import RoomId


class ClipDesk:
    """One per node."""

    def __init__(self, media: MediaService, redis: Redis) -> None:
        self._media = media
        self._redis = redis

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
        key = keyspace.clip(clip_id)
        duration_ms = int(clip.duration_s * 1000)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={
                "data": clip.data, "content_type": clip.content_type, "room": room,
                "moderator": session.user_id, "duration_ms": duration_ms, "tracks": clip.tracks,
                "created_ms": int(time.time() * 1000),
            })
            pipe.expire(key, keyspace.CLIP_TTL_S)
            pipe.lpush(keyspace.CLIPS_PENDING, clip_id)
            await pipe.execute()
        return {"clip_id": clip_id, "room": room, "content_type": clip.content_type, "duration_ms": duration_ms,
                "size": len(clip.data), "tracks": clip.tracks}
