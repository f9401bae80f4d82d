"""Evidence clips: from the node's Redis hand-off into Storage and the ``clips`` table; served to staff.

A node never touches Postgres: it leaves each clip it saves in the Redis hash ``keyspace.clip(id)``
(TTL ``keyspace.CLIP_TTL_S``) and pushes the id on ``keyspace.CLIPS_PENDING``. :class:`ClipIngest`
moves ids one at a time to ``CLIPS_INGESTING``, stores the file (``clip-<id>``), inserts the row
(``ON CONFLICT DO NOTHING``: at least once, applied once), deletes the hash, and drops the id; ids
left in ``CLIPS_INGESTING`` by an API that died are retried at start. ``GET /moderation/clips/{id}``
also ingests on the spot a clip still waiting in Redis, so a moderator never waits for the loop.

The API can also ask for a clip: the console's "save clip" (:func:`request_clip`, ``POST
/moderation/clips``) publishes the request on ``keyspace.CLIPS_CHANNEL`` and waits: each node
answers ``saved``, ``absent`` or ``taken`` (another node with the room handed it over) on
``keyspace.clip_answers(id)``. All absent (or no answer in time):
the room never ran through an SFU (or its node is gone), a 404, and nothing is stored. A report on a
live session or show (:func:`clip_for_report`) publishes the same request with the report's id and
does not wait: the node's hand-off carries the id, and the ingest links the clip to the report.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeout
from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from control_api.errors import NotFound
from control_api.http import Call, Reply, Route
from control_api.models import Account, AuditEntry, Clip, Report
from control_api.rooms import ROOM
from control_api.sanctions import require_staff
from control_api.schema import Field, Schema
from control_api.services import Services
from control_api.webhooks import outbox as webhooks
from switchboard.keyspace import CLIPS_CHANNEL, CLIPS_INGESTING, CLIPS_PENDING, clip, clip_answers, clip_auto
from switchboard.redis_client import text

log = logging.getLogger("switchboard.api.clips")

CLIP_ID = r"^[0-9a-f]{32}$"
CONTENT_TYPES = ("video/webm", "video/x-matroska")
AUTO_CLIP_S = 10
"""Reports on one room within this many seconds share the clip the first one asked for."""
SHARE_SLACK_S = 5
"""Clock slack between the node that stamps a clip and Postgres, when matching reports to it."""
BLOCK_S = 2
"""The longest blocking read (the ingest loop's, a request's wait for answers): below redis-py's
default socket timeout (5 s), which would end a longer one with TimeoutError."""
REQUEST_TIMEOUT_S = 20.0
"""How long :func:`request_clip` waits for the nodes' answers (a clip takes ~0.1 s to remux)."""


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
        f = {text(k): v for k, v in fields.items()}
        try:
            raw = f["data"]
            data = raw if isinstance(raw, bytes) else raw.encode()
            content_type = text(f["content_type"])
            room = text(f["room"])[:200]
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
            moderator = _uuid(text(f.get("moderator", b"")))
            if moderator is not None and await session.get(Account, moderator) is None:
                moderator = None
            stored = await session.scalar(insert(Clip).values(
                id=clip_id, room=room, moderator_id=moderator, content_type=content_type, size=len(data),
                duration_ms=duration_ms, tracks=tracks, storage_name=name,
            ).on_conflict_do_nothing(index_elements=["id"]).returning(Clip.id))
            if stored is not None and moderator is not None:
                # A moderator's own save (the console's, or clip.save on a tap): audited once, with the
                # row, whichever path stores it (the request, the loop, or a GET that found it waiting).
                session.add(AuditEntry(actor_id=moderator, action="clip.saved", subject=room,
                                       detail={"clip_id": clip_id, "duration_ms": duration_ms, "tracks": tracks}))
            await webhooks.record(session, "clip_saved", {"clip_id": clip_id, "room": room, "duration_ms": duration_ms,
                                                          "tracks": tracks}, event_id=f"evt_clip_{clip_id}")
            report_id = _int(text(f.get("report_id", b"")))
            if report_id is not None:
                await _link(session, report_id, clip_id, room)
        if report_id is not None:  # reports that shared this request (see clip_for_report), after the commit
            await self._share(clip_id, room, _int(text(f.get("created_ms", b""))))
        await self._redis.delete(clip(clip_id))
        return True

    async def _share(self, clip_id: str, room: str, created_ms: int | None) -> None:
        """Link the open reports on ``room`` made around this clip's request and still without a clip."""
        made = datetime.fromtimestamp(created_ms / 1000, UTC) if created_ms else datetime.now(UTC)
        async with self._services.sessions() as session, session.begin():
            reports = await session.scalars(select(Report.id).where(
                or_(Report.session_id == room, Report.room == room), Report.clip_id.is_(None),
                Report.status.in_(("open", "in_review")),
                Report.created_at >= made - timedelta(seconds=SHARE_SLACK_S),
                Report.created_at <= made + timedelta(seconds=AUTO_CLIP_S + SHARE_SLACK_S)))
            for report_id in list(reports):
                await _link(session, report_id, clip_id, room)

    async def _one(self, clip_id: str) -> None:
        try:
            await self.ingest(clip_id)
        finally:
            await self._redis.lrem(CLIPS_INGESTING, 0, clip_id)

    async def run(self) -> None:
        """Forever: retry what a previous run left half done, then take pending ids as they come.
        Redis errors never end it: a blocking read that times out (redis-py may time out the read
        just as the server answers nil) is an empty one; Redis away is logged once and retried each
        second, the ids waiting in Redis meanwhile."""
        leftovers, down = True, False
        while True:
            try:
                if leftovers:
                    for left in await self._redis.lrange(CLIPS_INGESTING, 0, -1):
                        await self._guarded(text(left))
                    leftovers = False
                got = await self._redis.blmove(CLIPS_PENDING, CLIPS_INGESTING, BLOCK_S, "RIGHT", "LEFT")
                down = False
            except RedisTimeout:  # an id the server moved just then waits in CLIPS_INGESTING: look there
                leftovers = True
                continue
            except (RedisError, OSError) as exc:
                if not down:
                    log.warning("clip ingest: Redis unavailable (%s); retrying", exc)
                down = True
                await asyncio.sleep(1)
                continue
            if got is not None:
                await self._guarded(text(got))

    async def _guarded(self, clip_id: str) -> None:
        try:
            await self._one(clip_id)
        except asyncio.CancelledError:
            raise
        except Exception:  # Postgres or storage down: the id stays in Redis for the next start
            log.exception("clip %s not stored", clip_id)
            await asyncio.sleep(1)


async def ask_nodes(redis: Redis, clip_id: str, room: str, *, moderator: uuid.UUID | None = None,
                    report_id: int | None = None) -> int:
    """Publish a clip request to every node; returns how many nodes listen. With ``report_id`` the
    node's hand-off carries it and :meth:`ClipIngest.ingest` links the clip to that report."""
    request: dict[str, Any] = {"clip_id": clip_id, "room": room, "moderator": str(moderator) if moderator else ""}
    if report_id is not None:
        request["report_id"] = report_id
    return int(await redis.publish(CLIPS_CHANNEL, json.dumps(request)))


async def clip_for_report(services: Services, report_id: int, room: str) -> None:
    """A report on a live session asks the nodes for its clip and returns at once: the node that has
    the room's media hands it over with the report's id, and the ingest links it (audited as
    ``report.clip`` by nobody: the system). No node has it (a P2P call, a session over): no clip, and
    the report stands. Redis away: logged, the report stands too.

    Reports on one room within ``AUTO_CLIP_S`` share one clip (fifty viewers reporting a show make
    one remux and one file, not fifty): only the first asks; the ingest links every recent open
    report on the room, and a report made after that ingest links the stored clip itself (each side
    looks after committing, so one of them always sees the other)."""
    redis: Redis = services.redis
    clip_id = uuid.uuid4().hex
    try:
        if await redis.set(clip_auto(room), clip_id, nx=True, ex=AUTO_CLIP_S):
            await ask_nodes(redis, clip_id, room, report_id=report_id)
            return
    except (RedisError, OSError) as exc:
        log.warning("no clip asked for report %s: %s", report_id, exc)
        return
    async with services.sessions() as session, session.begin():
        recent = await session.scalar(select(Clip.id).where(
            Clip.room == room, Clip.moderator_id.is_(None),
            Clip.created_at >= func.now() - timedelta(seconds=AUTO_CLIP_S + SHARE_SLACK_S),
        ).order_by(Clip.created_at.desc()).limit(1))
        if recent is not None:
            await _link(session, report_id, recent, room)


async def request_clip(services: Services, room: str, moderator: uuid.UUID,
                       timeout_s: float = REQUEST_TIMEOUT_S) -> Clip:
    """Ask every node for a clip of ``room`` and store it; :class:`NotFound` when no node has media of
    that room (a P2P call, a room never opened, nothing published), nothing stored then."""
    redis: Redis = services.redis
    clip_id = uuid.uuid4().hex
    nodes = await ask_nodes(redis, clip_id, room, moderator=moderator)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    saved = False
    answers = 0
    while answers < nodes and not saved:
        left = deadline - loop.time()
        if left <= 0:
            break
        try:  # blocking reads shorter than redis-py's socket timeout (5 s by default)
            got = await redis.blpop([clip_answers(clip_id)], timeout=min(BLOCK_S, max(0.01, left)))
        except RedisTimeout:
            continue
        if got is not None:
            answers += 1
            saved = text(got[1]) == "saved"
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


async def _link(session: AsyncSession, report_id: int, clip_id: str, room: str) -> None:
    """A report's own clip becomes its evidence unless a moderator saved one already; at most once
    (a second ingest of the same hand-off finds the report linked and writes nothing)."""
    linked = await session.execute(update(Report).where(Report.id == report_id, Report.clip_id.is_(None))
                                   .values(clip_id=clip_id))
    if getattr(linked, "rowcount", 0) == 1:
        session.add(AuditEntry(actor_id=None, action="report.clip", subject=str(report_id),
                               detail={"clip_id": clip_id, "room": room, "by": "report"}))


def _int(value: str) -> int | None:
    return int(value) if value.isascii() and value.isdigit() and 0 < int(value) < 2**63 else None


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
