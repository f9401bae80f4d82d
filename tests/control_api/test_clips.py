"""Evidence clips through the API: a node's hand-off in Redis (made by the node's own ClipDesk) is
stored through Storage with a ``clips`` row and served to staff only, as video/webm; bad input
(unknown or malformed id, non-staff) changes nothing."""

from __future__ import annotations

import asyncio
import json
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
from tests.control_api.conftest import ON_CLUSTER_TOO, Api
from tests.control_api.moderation import paired, watched

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


@ON_CLUSTER_TOO
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
    await watched(api, redis, bob, ann, name="show-evidence")
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


class SessionMedia:
    """A node's MediaService (our Protocol) whose SFU carries one random-chat session."""

    def __init__(self, room: str) -> None:
        self.room = room
        self.asked: list[str] = []

    async def save_clip(self, room_id: RoomId) -> Clip:
        from sfu.errors import UnknownRoom

        self.asked.append(room_id)
        if room_id != self.room:
            raise UnknownRoom(room_id)
        return Clip(WEBM, "video/webm", 29.5, 4, 0)


async def _linked(api: Api, mod: Any, report_id: int) -> dict[str, Any]:
    async with asyncio.timeout(20):
        while True:
            status, seen = await api.call("GET", f"/moderation/reports/{report_id}", mod)
            assert status == 200, seen
            if seen["clip"] is not None:
                return seen  # type: ignore[no-any-return]
            await asyncio.sleep(0.05)


@ON_CLUSTER_TOO
async def test_a_report_on_a_live_session_makes_its_clip(make_api: Any, redis: Any) -> None:
    """``POST /reports {session_id}``: the node whose SFU carries the session hands its clip over with
    the report's id, the API's ingest links it (audited, by the system), and the console gets the file;
    a report on a session no SFU carries (a P2P call) still succeeds, gets no clip, and a moderator's
    clip request for it is a 404 problem+json that stores nothing."""
    api = await make_api(consume_events=True)
    mod, ann, bob, cal = await staff(api), await api.user(), await api.user(), await api.user()
    session_id = await paired(redis, bob, ann)
    media = SessionMedia(session_id)
    desks = [ClipDesk(media, redis), ClipDesk(NoMedia(), redis)]  # type: ignore[arg-type]
    for desk in desks:
        await desk.start()
    try:
        status, report = await api.call("POST", "/reports", bob, json={"user_id": ann.id, "session_id": session_id,
                                                                       "reason": "nudity_minor"})
        assert status == 201, report
        seen = await _linked(api, mod, report["id"])
        resp = await api.client.get(seen["clip"]["url"], headers=mod.auth)
        assert resp.status == 200 and resp.content_type == "video/webm" and await resp.read() == WEBM
        status, clip = await api.call("GET", f"/moderation/clips/{seen['clip']['id']}", mod)
        assert status == 200 and (clip["room"], clip["moderator_id"], clip["duration_ms"]) == (session_id, None, 29500)

        # A repeat of the same report answers the open one and asks for no second clip.
        status, again = await api.call("POST", "/reports", bob, json={"user_id": ann.id, "session_id": session_id,
                                                                      "reason": "nudity_minor"})
        assert status == 200 and again["id"] == report["id"]
        # Profile and show reports: only live ones ask (a show room the SFU does not carry: no clip).
        status, _ = await api.call("POST", "/reports", bob, json={"user_id": ann.id, "reason": "spam_scam"})
        assert status == 201
        p2p = await paired(redis, ann, cal)
        status, quiet = await api.call("POST", "/reports", ann, json={"user_id": cal.id, "session_id": p2p,
                                                                      "reason": "harassment"})
        assert status == 201, quiet
        async with asyncio.timeout(10):
            while media.asked.count(p2p) < 1:  # noqa: ASYNC110 - the node was asked and said absent
                await asyncio.sleep(0.05)
        assert media.asked.count(session_id) == 1, media.asked
        status, problem = await api.call("POST", "/moderation/clips", mod, json={"room": p2p, "report_id": quiet["id"]})
        assert status == 404 and "no clip was saved" in problem["detail"], problem
        status, seen_quiet = await api.call("GET", f"/moderation/reports/{quiet['id']}", mod)
        assert status == 200 and seen_quiet["clip"] is None and seen_quiet["status"] == "open"
    finally:
        for desk in desks:
            await desk.close()
    services = api.app._subapps[0][SERVICES]  # type: ignore[attr-defined]
    async with services.sessions() as session:
        from sqlalchemy import func, select

        assert await session.scalar(select(func.count()).select_from(ClipRow)) == 1
        rows = (await session.execute(select(AuditEntry.actor_id, AuditEntry.detail)
                                      .where(AuditEntry.action == "report.clip"))).all()
    assert [(actor, detail["by"]) for actor, detail in rows] == [(None, "report")]


async def test_a_moderators_clip_is_not_replaced_by_the_reports_own(api: Api, redis: Any) -> None:
    """The ingest links a report's own clip only to a report without one, once: a hand-off ingested
    twice, or after a moderator's save, changes nothing."""
    mod, ann, bob = await staff(api), await api.user(), await api.user()
    await watched(api, redis, bob, ann, name="show-evidence")
    status, report = await api.call("POST", "/reports", ann, json={"user_id": bob.id, "room": "show-evidence",
                                                                   "reason": "harassment"})
    assert status == 201
    desk = ClipDesk(OneClipMedia(), redis)  # type: ignore[arg-type]
    await desk.start()
    try:
        status, clip = await api.call("POST", "/moderation/clips", mod,
                                      json={"room": "show-evidence", "report_id": report["id"]})
        assert status == 201, clip
        late = uuid.uuid4().hex
        await desk._answer(json.dumps({"clip_id": late, "room": "show-evidence", "moderator": "",
                                       "report_id": report["id"]}))
    finally:
        await desk.close()
    services = api.app._subapps[0][SERVICES]  # type: ignore[attr-defined]
    ingest = ClipIngest(services)
    assert await ingest.ingest(late) and not await ingest.ingest(late)
    status, seen = await api.call("GET", f"/moderation/reports/{report['id']}", mod)
    assert seen["clip"]["id"] == clip["id"]


async def test_malformed_clip_requests_are_dropped_by_the_node(redis: Any) -> None:
    """Whatever lands on the channel, a node saves nothing it should not and keeps listening."""
    media = SessionMedia("room-x")
    desk = ClipDesk(media, redis)  # type: ignore[arg-type]
    for raw in ("{", "[]", json.dumps({"clip_id": "a", "room": "room-x"}),
                json.dumps({"clip_id": "a", "room": "room-x", "moderator": 7}),
                json.dumps({"clip_id": "a", "room": "room-x", "moderator": "", "report_id": "1"}),
                json.dumps({"clip_id": "a", "room": "room-x", "moderator": "", "report_id": True}),
                json.dumps({"clip_id": "a", "room": "room-x", "moderator": "", "report_id": 0}),
                json.dumps({"clip_id": "", "room": "room-x", "moderator": ""})):
        await desk._answer(raw)
    assert media.asked == [] and not await redis.keys("clip:*")


async def test_the_ingest_loop_outlives_idle_reads(api: Api, redis: Any) -> None:
    """Several blocking reads with nothing to take (redis-py may time one out just as the server
    answers nil: that killed the loop in ``switchboard up``), then a hand-off: it is still stored."""
    from control_api.clips import BLOCK_S

    mod = await staff(api)
    services = api.app._subapps[0][SERVICES]  # type: ignore[attr-defined]
    task = asyncio.create_task(ClipIngest(services).run())
    try:
        await asyncio.sleep(3 * BLOCK_S + 1)
        assert not task.done()
        desk = ClipDesk(OneClipMedia(), redis)  # type: ignore[arg-type]
        clip_id = (await desk.save(ModSession(mod.id, Grants(True)), {"room": "show-evidence"}))["clip_id"]  # type: ignore[arg-type]
        async with asyncio.timeout(20):
            while await redis.exists(keyspace.clip(clip_id)):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
    async with services.sessions() as session:
        assert await session.get(ClipRow, clip_id) is not None


async def test_a_node_that_never_answers_is_a_404_not_a_redis_timeout(api: Api, redis: Any) -> None:
    """A subscriber that never answers (a node hung or dying): the API waits its whole timeout, longer
    than redis-py's 5 s socket timeout, in short blocking reads, and says 404; nothing is stored."""
    from control_api.clips import request_clip
    from control_api.errors import NotFound

    mod = await staff(api)
    silent = redis.pubsub()
    await silent.subscribe(keyspace.CLIPS_CHANNEL)
    try:
        services = api.app._subapps[0][SERVICES]  # type: ignore[attr-defined]
        try:
            await request_clip(services, "show-evidence", uuid.UUID(mod.id), timeout_s=6.5)
        except NotFound as exc:
            assert "no clip was saved" in str(exc)
        else:
            raise AssertionError("no node answered: 404")
    finally:
        await silent.aclose()
    assert not await redis.keys("clip:*")


async def test_reports_on_one_room_share_one_clip(make_api: Any, redis: Any, monkeypatch: Any) -> None:
    """A raid: several viewers report one show within seconds. The node remuxes once; every report
    gets that clip, whether made before the clip was stored (the ingest links it) or after (the report
    links it itself); each link is audited once."""
    monkeypatch.setattr("control_api.clips.AUTO_CLIP_S", 600)  # "within seconds" however slow this machine is
    api = await make_api(consume_events=True)
    mod, host = await staff(api), await api.user()
    fans = [await api.user() for _ in range(3)]
    room = await watched(api, redis, host, *fans)
    media = SessionMedia(room)
    desk = ClipDesk(media, redis)  # type: ignore[arg-type]
    await desk.start()
    try:
        made = await asyncio.gather(*(api.call("POST", "/reports", fan, json={"user_id": host.id, "room": room,
                                                                             "reason": "hate_violence"})
                                      for fan in fans[:2]))
        assert [status for status, _ in made] == [201, 201], made
        first = await _linked(api, mod, made[0][1]["id"])
        second = await _linked(api, mod, made[1][1]["id"])
        status, late = await api.call("POST", "/reports", fans[2], json={"user_id": host.id, "room": room,
                                                                         "reason": "other"})
        assert status == 201, late
        third = await _linked(api, mod, late["id"])
    finally:
        await desk.close()
    assert first["clip"] == second["clip"] == third["clip"]
    assert media.asked == [room]
    async with api.app._subapps[0][SERVICES].sessions() as session:  # type: ignore[attr-defined]
        from sqlalchemy import func, select

        assert await session.scalar(select(func.count()).select_from(ClipRow)) == 1
        subjects = (await session.scalars(select(AuditEntry.subject).where(AuditEntry.action == "report.clip"))).all()
    assert sorted(subjects) == sorted(str(r["id"]) for r in (made[0][1], made[1][1], late))


async def test_a_hand_off_with_a_bad_report_id_is_stored_and_links_nothing(api: Api, redis: Any) -> None:
    mod = await staff(api)
    for bad in ("²", "-1", "0", "abc", str(2**63), ""):
        clip_id = uuid.uuid4().hex
        await redis.hset(keyspace.clip(clip_id), mapping={
            "data": WEBM, "content_type": "video/webm", "room": "show-evidence", "moderator": "",
            "duration_ms": 1000, "tracks": 2, "created_ms": 1, "report_id": bad})
        status, body = await api.call("GET", f"/moderation/clips/{clip_id}", mod)
        assert status == 200 and body["moderator_id"] is None, (bad, body)
    async with api.app._subapps[0][SERVICES].sessions() as session:  # type: ignore[attr-defined]
        from sqlalchemy import select

        assert (await session.scalars(select(AuditEntry).where(AuditEntry.action == "report.clip"))).all() == []


async def test_a_moderators_clip_without_a_report_is_audited_once(api: Api, redis: Any) -> None:
    """The console's "save clip" with no report, and a tap's ``clip.save`` on the node: each stored clip
    writes one ``clip.saved`` row (actor the moderator, subject the room), read through the audit API;
    a second ingest of the same hand-off writes none."""
    mod = await staff(api)
    desk = ClipDesk(OneClipMedia(), redis)  # type: ignore[arg-type]
    await desk.start()
    try:
        status, clip = await api.call("POST", "/moderation/clips", mod, json={"room": "show-evidence"})
        assert status == 201, clip
    finally:
        await desk.close()
    tapped = (await desk.save(ModSession(mod.id, Grants(True)), {"room": "show-evidence"}))["clip_id"]  # type: ignore[arg-type]
    assert (await api.call("GET", f"/moderation/clips/{tapped}", mod))[0] == 200  # stored on the spot
    services = api.app._subapps[0][SERVICES]  # type: ignore[attr-defined]
    assert not await ClipIngest(services).ingest(tapped)
    status, page = await api.call("GET", "/moderation/audit?action=clip.saved", mod)
    assert status == 200, page
    rows = sorted(page["items"], key=lambda e: e["id"])
    assert [(e["actor_id"], e["subject"], e["detail"]["clip_id"]) for e in rows] == [
        (mod.id, "show-evidence", clip["id"]), (mod.id, "show-evidence", tapped)]
    assert rows[0]["detail"]["duration_ms"] == 30200
