"""Evidence clips through the API: a node's hand-off in Redis (made by the node's own ClipDesk) is
stored through Storage with a ``clips`` row and served to staff only, as video/webm; bad input
(unknown or malformed id, non-staff) changes nothing."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

from control_api.clips import ClipIngest
from control_api.models import Account, AuditEntry, Role
from control_api.models import Clip as ClipRow
from control_api.services import SERVICES
from sfu.clips import Clip
from signaling.clips import ClipDesk
from switchboard import keyspace
from switchboard.ids import RoomId
from tests.control_api.conftest import Api

WEBM = b"\x1aE\xdf\xa3" + bytes(range(256)) * 40


class OneClipMedia:
    """The node's MediaService (our Protocol) as far as clips go: one room with media."""

    async def save_clip(self, room_id: RoomId) -> Clip:
        from sfu.errors import UnknownRoom

        if room_id != "show-evidence":
            raise UnknownRoom(room_id)
        return Clip(WEBM, "video/webm", 30.2, 2, 0)


@dataclass
class Grants:
    moderate: bool


@dataclass
class ModSession:
    user_id: str
    grants: Grants


async def staff(api: Api) -> Any:
    mod = await api.user()
    async with api.app._subapps[0][SERVICES].sessions() as session, session.begin():  # type: ignore[attr-defined]
        account = await session.get(Account, uuid.UUID(mod.id))
        assert account is not None
        account.role = Role.MODERATOR
    return mod


async def test_a_saved_clip_is_stored_and_served_to_staff_only(api: Api, redis: Any) -> None:
    mod, user = await staff(api), await api.user()
    desk = ClipDesk(OneClipMedia(), redis)  # type: ignore[arg-type]
    reply = await desk.save(ModSession(mod.id, Grants(True)), {"room": "show-evidence"})  # type: ignore[arg-type]
    clip_id = reply["clip_id"]
    assert await redis.lrange(keyspace.CLIPS_PENDING, 0, -1) == [clip_id.encode()]

    assert (await api.call("GET", f"/moderation/clips/{clip_id}", user))[0] == 403
    assert (await api.call("GET", f"/moderation/clips/{clip_id}"))[0] == 401
    status, body = await api.call("GET", f"/moderation/clips/{clip_id}", mod)
    assert status == 200, body
    assert (body["room"], body["moderator_id"], body["content_type"], body["size"], body["duration_ms"]) == (
        "show-evidence", mod.id, "video/webm", len(WEBM), 30200)
    resp = await api.client.get(body["url"], headers=mod.auth)
    assert resp.status == 200 and resp.content_type == "video/webm"
    assert await resp.read() == WEBM
    assert not await redis.exists(keyspace.clip(clip_id)), "the hand-off is gone once stored"

    # The loop finds the id already stored: nothing doubles.
    services = api.app._subapps[0][SERVICES]  # type: ignore[attr-defined]
    ingest = ClipIngest(services)
    task = asyncio.create_task(ingest.run())
    try:
        async with asyncio.timeout(10):
            while await redis.llen(keyspace.CLIPS_PENDING) or await redis.llen(keyspace.CLIPS_INGESTING):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
    async with services.sessions() as session:
        assert await session.get(ClipRow, clip_id) is not None


async def test_the_ingest_loop_stores_what_nodes_hand_over(api: Api, redis: Any) -> None:
    mod = await staff(api)
    desk = ClipDesk(OneClipMedia(), redis)  # type: ignore[arg-type]
    clip_id = (await desk.save(ModSession(mod.id, Grants(True)), {"room": "show-evidence"}))["clip_id"]  # type: ignore[arg-type]
    services = api.app._subapps[0][SERVICES]  # type: ignore[attr-defined]
    task = asyncio.create_task(ClipIngest(services).run())
    try:
        async with asyncio.timeout(10):
            while await redis.exists(keyspace.clip(clip_id)):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
    async with services.sessions() as session:
        row = await session.get(ClipRow, clip_id)
        assert row is not None and row.size == len(WEBM)
    assert await services.storage.get(row.storage_name) == WEBM


async def test_bad_clip_requests_change_nothing(api: Api, redis: Any) -> None:
    mod = await staff(api)
    assert (await api.call("GET", f"/moderation/clips/{uuid.uuid4().hex}", mod))[0] == 404
    assert (await api.call("GET", "/moderation/clips/not-an-id", mod))[0] in (400, 422)
    desk = ClipDesk(OneClipMedia(), redis)  # type: ignore[arg-type]
    from signaling.errors import Forbidden, NotFound

    for session, room, error in ((ModSession(mod.id, Grants(True)), "p2p-call", NotFound),
                                 (ModSession(mod.id, Grants(False)), "show-evidence", Forbidden)):
        try:
            await desk.save(session, {"room": room})  # type: ignore[arg-type]
        except error:
            pass
        else:
            raise AssertionError(f"{room} should fail")
    assert await redis.llen(keyspace.CLIPS_PENDING) == 0 and not await redis.keys("clip:*")
    async with api.app._subapps[0][SERVICES].sessions() as session:  # type: ignore[attr-defined]
        from sqlalchemy import func, select

        assert await session.scalar(select(func.count()).select_from(ClipRow)) == 0


async def test_the_console_asks_the_nodes_for_a_clip(api: Api, redis: Any) -> None:
    """``POST /moderation/clips``: the API publishes the request, the node that has the room (its real
    ClipDesk, over a MediaService of ours) hands the clip over; a room no node has is a 404 and
    nothing is stored, whether nodes answer ``absent`` or none is running."""
    mod, user = await staff(api), await api.user()
    desks = [ClipDesk(OneClipMedia(), redis), ClipDesk(NoMedia(), redis)]  # type: ignore[arg-type]
    for desk in desks:
        await desk.start()
    try:
        status, body = await api.call("POST", "/moderation/clips", mod, json={"room": "show-evidence"})
        assert status == 201, body
        assert (body["room"], body["moderator_id"], body["size"]) == ("show-evidence", mod.id, len(WEBM))
        resp = await api.client.get(body["url"], headers=mod.auth)
        assert resp.status == 200 and await resp.read() == WEBM

        assert (await api.call("POST", "/moderation/clips", user, json={"room": "show-evidence"}))[0] == 403
        status, body = await api.call("POST", "/moderation/clips", mod, json={"room": "p2p-call"})
        assert status == 404 and "no clip was saved" in body["detail"], body
        assert (await api.call("POST", "/moderation/clips", mod, json={"room": "bad room!"}))[0] == 422
    finally:
        for desk in desks:
            await desk.close()
            await desk.close()  # idempotent
    status, _ = await api.call("POST", "/moderation/clips", mod, json={"room": "show-evidence"})
    assert status == 404  # no node listening: nothing can have the room
    services = api.app._subapps[0][SERVICES]  # type: ignore[attr-defined]
    async with services.sessions() as session:
        from sqlalchemy import func, select

        assert await session.scalar(select(func.count()).select_from(ClipRow)) == 1
    assert not await redis.keys("clip:*")


class NoMedia:
    async def save_clip(self, room_id: RoomId) -> Clip:
        from sfu.errors import UnknownRoom

        raise UnknownRoom(room_id)


async def test_a_clip_saved_for_a_report_is_its_evidence(api: Api, redis: Any) -> None:
    """``POST /moderation/clips {room, report_id}``: the report links the clip, the console gets its
    file's address with the report, and the link is audited; an unknown report stores nothing."""
    mod, ann, bob = await staff(api), await api.user(), await api.user()
    status, report = await api.call("POST", "/reports", ann, json={"user_id": bob.id, "room": "show-evidence",
                                                                   "reason": "harassment"})
    assert status == 201, report
    desk = ClipDesk(OneClipMedia(), redis)  # type: ignore[arg-type]
    await desk.start()
    try:
        status, body = await api.call("POST", "/moderation/clips", mod,
                                      json={"room": "show-evidence", "report_id": 10**12})
        assert status == 404, body
        status, clip = await api.call("POST", "/moderation/clips", mod,
                                      json={"room": "show-evidence", "report_id": report["id"]})
        assert status == 201, clip
    finally:
        await desk.close()
    status, seen = await api.call("GET", f"/moderation/reports/{report['id']}", mod)
    assert status == 200 and seen["clip"] == {"id": clip["id"], "url": clip["url"]}
    resp = await api.client.get(seen["clip"]["url"], headers=mod.auth)
    assert resp.status == 200 and await resp.read() == WEBM
    services = api.app._subapps[0][SERVICES]  # type: ignore[attr-defined]
    async with services.sessions() as session:
        from sqlalchemy import func, select

        assert await session.scalar(select(func.count()).select_from(ClipRow)) == 1
        linked = select(AuditEntry.action).where(AuditEntry.subject == str(report["id"]))
        actions = (await session.scalars(linked)).all()
    assert "report.clip" in actions
