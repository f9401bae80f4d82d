"""Evidence clips: from the node's Redis hand-off into Storage and the ``clips`` table; served to staff.

A node never touches Postgres: it leaves each clip it saves in the Redis hash ``keyspace.clip(id)``
(TTL ``keyspace.CLIP_TTL_S``) and pushes the id on ``keyspace.CLIPS_PENDING``. :class:`ClipIngest`
moves ids one at a time to ``CLIPS_INGESTING``, stores the file (``clip-<id>``), inserts the row
(``ON CONFLICT DO NOTHING``: at least once, applied once), deletes the hash, and drops the id; ids
left in ``CLIPS_INGESTING`` by an API that died are retried at start. ``GET /moderation/clips/{id}``
also ingests on the spot a clip still waiting in Redis, so a moderator never waits for the loop.

The API can also ask for a clip (:func:`request_clip`: the console's "save clip", ``POST
/moderation/clips``, and the moderation workflow on a report about a session or room): it publishes
the request on ``keyspace.CLIPS_CHANNEL``; each node answers ``saved`` or ``absent`` on
``keyspace.clip_answers(id)``. All absent (or no answer in time): the room never ran through an SFU
(or its node is gone), a 404, and nothing is stored.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from typing import Any

from aiohttp import web
from redis.asyncio import Redis
from sqlalchemy.dialects.postgresql import insert

from control_api.errors import NotFound
from control_api.http import Call, Reply, Route
from control_api.models import Account, AuditEntry, Clip, Report
from control_api.rooms import ROOM
from control_api.sanctions import require_staff
from control_api.schema import Field, Schema
from control_api.services import Services
from control_api.webhooks import outbox as webhooks
from switchboard.keyspace import CLIPS_CHANNEL, CLIPS_INGESTING, CLIPS_PENDING, clip, clip_answers

log = logging.getLogger("switchboard.api.clips")

CLIP_ID = r"^[0-9a-f]{32}$"
CONTENT_TYPES = ("video/webm", "video/x-matroska")
REQUEST_TIMEOUT_S = 20.0
"""How long :func:`request_clip` waits for the nodes' answers (a clip takes ~0.1 s to remux)."""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class ClipIngest:
    """Stores the clips nodes hand over in Redis (see the module docstring)."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._redis: Redis = services.redis

    async def ingest(self, clip_id: str) -> bool:
        """Store one clip waiting in Redis; False when there is none (gone, expired, malformed)."""
        if not re.match(CLIP_ID, clip_id):
            return False
        fields = await self._redis.hgetall(clip(clip_id))
        if not fields:
            return False
        f = {_text(k): v for k, v in fields.items()}
        try:
            data = bytes(f["data"])
            content_type = _text(f["content_type"])
            room = _text(f["room"])[:200]
            duration_ms, tracks = int(f["duration_ms"]), int(f["tracks"])
            if content_type not in CONTENT_TYPES or not data:
                raise ValueError(content_type)
        except (KeyError, ValueError, UnicodeDecodeError):
            log.warning("dropping malformed clip %s", clip_id)
            await self._redis.delete(clip(clip_id))
            return False
        name = f"clip-{clip_id}"
        await self._services.storage.put(name, data)
        async with self._services.sessions() as session, session.begin():
            moderator = _uuid(_text(f.get("moderator", b"")))
            if moderator is not None and await session.get(Account, moderator) is None:
                moderator = None
            await session.execute(insert(Clip).values(
                id=clip_id, room=room, moderator_id=moderator, content_type=content_type, size=len(data),
                duration_ms=duration_ms, tracks=tracks, storage_name=name,
            ).on_conflict_do_nothing(index_elements=["id"]))
            await webhooks.record(session, "clip_saved", {"clip_id": clip_id, "room": room, "duration_ms": duration_ms,
                                                          "tracks": tracks}, event_id=f"evt_clip_{clip_id}")
        await self._redis.delete(clip(clip_id))
        return True

    async def _one(self, clip_id: str) -> None:
        try:
            await self.ingest(clip_id)
        finally:
            await self._redis.lrem(CLIPS_INGESTING, 0, clip_id)

    async def run(self) -> None:
        """Forever: retry what a previous run left half done, then take pending ids as they come."""
        for left in await self._redis.lrange(CLIPS_INGESTING, 0, -1):
            await self._guarded(_text(left))
        while True:
            got = await self._redis.blmove(CLIPS_PENDING, CLIPS_INGESTING, 5, "RIGHT", "LEFT")
            if got is not None:
                await self._guarded(_text(got))

    async def _guarded(self, clip_id: str) -> None:
        try:
            await self._one(clip_id)
        except asyncio.CancelledError:
            raise
        except Exception:  # Postgres or storage down: the id stays in Redis for the next start
            log.exception("clip %s not stored", clip_id)
            await asyncio.sleep(1)


async def request_clip(services: Services, room: str, moderator: uuid.UUID,
                       timeout_s: float = REQUEST_TIMEOUT_S) -> Clip:
    """Ask every node for a clip of ``room`` and store it; :class:`NotFound` when no node has media of
    that room (a P2P call, a room never opened, nothing published), nothing stored then."""
    redis: Redis = services.redis
    clip_id = uuid.uuid4().hex
    nodes = await redis.publish(CLIPS_CHANNEL, json.dumps({"clip_id": clip_id, "room": room,
                                                           "moderator": str(moderator)}))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    saved = False
    for _ in range(nodes):
        left = deadline - loop.time()
        got = await redis.blpop([clip_answers(clip_id)], timeout=max(0.01, left)) if left > 0 else None
        if got is None:
            break
        if _text(got[1]) == "saved":
            saved = True
            break
    await redis.delete(clip_answers(clip_id))
    if saved:
        await ClipIngest(services).ingest(clip_id)  # or the loop did: the row is there either way
        async with services.sessions() as session:
            row = await session.get(Clip, clip_id)
        if row is not None:
            return row
    raise NotFound(f"room {room!r} has no media through any SFU (a peer-to-peer call, a room never opened, "
                   "or nothing published): no clip was saved")


async def _save(call: Call) -> Reply:
    report_id = call.body.get("report_id")
    async with call.services.sessions() as session:
        staff = await require_staff(session, call.me.user_id)
        if report_id is not None and await session.get(Report, report_id) is None:
            raise NotFound(f"no report {report_id}")
    row = await request_clip(call.services, call.body["room"], staff.id)
    if report_id is not None:
        # The report's evidence: the console plays it with the report's context.
        async with call.services.sessions() as session, session.begin():
            report = await session.get(Report, report_id)
            if report is not None:
                report.clip_id = row.id
                session.add(AuditEntry(actor_id=staff.id, action="report.clip", subject=str(report_id),
                                       detail={"clip_id": row.id, "room": row.room}))
    return Reply(as_json(row), 201)


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def as_json(row: Clip) -> dict[str, Any]:
    return {"id": row.id, "room": row.room, "moderator_id": str(row.moderator_id) if row.moderator_id else None,
            "content_type": row.content_type, "size": row.size, "duration_ms": row.duration_ms,
            "tracks": row.tracks, "url": f"/api/moderation/clips/{row.id}/file",
            "created_at": row.created_at.isoformat()}


async def _stored(call: Call) -> Clip:
    clip_id = call.params["clip_id"]
    async with call.services.sessions() as session:
        await require_staff(session, call.me.user_id)
        row = await session.get(Clip, clip_id)
    if row is None and await ClipIngest(call.services).ingest(clip_id):
        async with call.services.sessions() as session:
            row = await session.get(Clip, clip_id)
    if row is None:
        raise NotFound("no such clip")
    return row


async def _clip(call: Call) -> Reply:
    return Reply(as_json(await _stored(call)))


async def _clip_file(call: Call) -> web.StreamResponse:
    row = await _stored(call)
    data = await call.services.storage.get(row.storage_name)
    if data is None:
        raise NotFound("no such clip")
    return web.Response(body=data, content_type=row.content_type,
                        headers={"Cache-Control": "private, no-store", "Content-Disposition": "inline"})


def routes() -> list[Route]:
    params = Schema({"clip_id": Field("string", pattern=CLIP_ID, description="clip.save's clip_id")})
    return [
        Route("POST", "/moderation/clips", _save,
              "Save an evidence clip of a live SFU room: its last seconds, every track (moderators)", "moderation",
              body=Schema({"room": Field("string", pattern=ROOM, description="a show's room, or a call's / "
                                         "match's id (its session_id)"),
                           "report_id": Field("integer", required=False, minimum=1, maximum=2**63 - 1,
                                              description="link the clip to this report (its evidence)")}),
              ok=201),
        Route("GET", "/moderation/clips/{clip_id}", _clip, "An evidence clip's details (moderators)", "moderation",
              params=params),
        Route("GET", "/moderation/clips/{clip_id}/file", _clip_file,
              "An evidence clip's file, video/webm or video/x-matroska (moderators)", "moderation",
              params=params, produces="video/*"),
    ]
