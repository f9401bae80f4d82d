"""Webhooks through the public doors: the admin API, a real receiving aiohttp server on 127.0.0.1,
a real node writing room facts to the events stream (a hidden tap writes none), the delivery log."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CollectorRegistry
from sqlalchemy import func, select, text

from control_api.models import Role
from control_api.webhooks.metrics import WebhookMetrics
from control_api.webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from control_api.webhooks.outbox import record
from switchboard.events import EventType, RoomEvent, encode
from switchboard.keyspace import EVENTS_STREAM
from switchboard_client.webhooks import HEADER, verify
from tests.control_api.conftest import Api
from tests.control_api.moderation import make_staff, services
from tests.control_api.webhook_receiver import FAST, Dispatcher, start_receiver, until
from tests.signaling.conftest import NodeFactory, make_node, signer, token, token_key  # noqa: F401

MakeApi = Callable[..., Awaitable[Api]]


async def _admin(api: Api) -> Any:
    return await make_staff(api, await api.user(), Role.ADMIN)


async def test_endpoints_are_staff_only_and_urls_checked(make_api: MakeApi) -> None:
    api = await make_api()
    admin, someone = await _admin(api), await api.user()
    assert (await api.call("POST", "/admin/webhooks", someone, json={"url": "https://example.com/h"}))[0] == 403
    assert (await api.call("GET", "/admin/webhooks", someone))[0] == 403
    for bad in ("ftp://example.com/h", "javascript:alert(1)//x", "https:///nohost", "http://u:p@example.com/h",
                "not a url at all"):
        status, problem = await api.call("POST", "/admin/webhooks", admin, json={"url": bad})
        assert status == 422 and [e["field"] for e in problem["errors"]] == ["url"], (bad, problem)
    status, problem = await api.call("POST", "/admin/webhooks", admin,
                                     json={"url": "https://example.com/h", "events": ["no_such_event"]})
    assert status == 422 and "events" in str(problem["errors"])
    status, made = await api.call("POST", "/admin/webhooks", admin,
                                  json={"url": "https://example.com/h", "events": ["room_started"]})
    assert status == 201 and made["secret"].startswith("whsec_") and made["events"] == ["room_started"]
    status, listed = await api.call("GET", "/admin/webhooks", admin)
    assert [e["id"] for e in listed["items"]] == [made["id"]] and "secret" not in listed["items"][0]
    assert (await api.call("DELETE", f"/admin/webhooks/{made['id']}", admin))[0] == 204
    assert (await api.call("DELETE", f"/admin/webhooks/{made['id']}", admin))[0] == 404
    assert (await api.call("GET", f"/admin/webhooks/{uuid.uuid4()}/deliveries", admin))[0] == 404


async def test_a_failing_receiver_that_recovers_gets_the_event_signed_and_logged(make_api: MakeApi) -> None:
    receiver = await start_receiver()
    api = await make_api(dispatch_webhooks=True, webhooks=FAST)
    try:
        admin = await _admin(api)
        _, endpoint = await api.call("POST", "/admin/webhooks", admin,
                                     json={"url": receiver.url, "events": ["report_created"]})
        receiver.plan = ["500", "hang"]  # a 500, then no answer within the timeout, then 204s
        a, b = await api.user(), await api.user()
        status, report = await api.call("POST", "/reports", a, json={"user_id": b.id, "reason": "spam_scam"})
        assert status == 201
        await until(lambda: receiver.delivered(), "the delivery after two failures")
        assert len(receiver.got) >= 3
        events = [verify(r.raw, r.headers[HEADER], endpoint["secret"]) for r in receiver.got]
        # At least once: the receiver saw the event several times, always with the same id.
        assert len({e["id"] for e in events}) == 1 and len(events) == len(receiver.got)
        event = events[0]
        assert event["type"] == "report_created" and event["data"]["report_id"] == report["id"]
        assert event["data"]["reported_id"] == b.id and isinstance(event["created"], int)
        assert receiver.got[0].headers["Switchboard-Event-Id"] == event["id"]

        path = f"/admin/webhooks/{endpoint['id']}/deliveries"

        async def three() -> bool:
            return len((await api.call("GET", path, admin))[1]["items"]) >= 3
        await until(three, "three attempts in the log")
        _, page = await api.call("GET", path, admin, params={"limit": "2"})
        newest, timed_out = page["items"]
        assert (newest["status_code"], newest["error"], newest["attempt"]) == (204, "", 3)
        assert timed_out["status_code"] is None and "no answer within" in timed_out["error"]
        assert newest["event_id"] == event["id"] and newest["type"] == "report_created"
        assert newest["latency_ms"] >= 0 and page["next_cursor"] == timed_out["id"]
        _, rest = await api.call("GET", path, admin, params={"limit": "2", "before": str(page["next_cursor"])})
        assert [(i["status_code"], i["error"], i["attempt"]) for i in rest["items"]] == [(500, "HTTP 500", 1)]
        assert rest["next_cursor"] is None

        # Rotation: the new secret signs at once, the previous one keeps signing for a day.
        _, rotated = await api.call("POST", f"/admin/webhooks/{endpoint['id']}/rotate", admin)
        assert rotated["secret"] != endpoint["secret"]
        c = await api.user()
        assert (await api.call("POST", "/reports", c, json={"user_id": b.id, "reason": "spam_scam"}))[0] == 201
        await until(lambda: len({e["id"] for e in receiver.delivered()}) == 2, "the second report's event")
        last = receiver.got[-1]
        assert verify(last.raw, last.headers[HEADER], rotated["secret"])["id"] != event["id"]
        assert verify(last.raw, last.headers[HEADER], endpoint["secret"])["id"] != event["id"]
    finally:
        receiver.release.set()
        await receiver.server.close()


async def test_room_facts_from_a_node_reach_the_receiver_and_a_hidden_tap_emits_nothing(
        make_api: MakeApi, make_node: NodeFactory, token: Callable[..., str], redis: Any) -> None:  # noqa: F811
    receiver = await start_receiver()
    api = await make_api(consume_events=True, dispatch_webhooks=True, webhooks=FAST)
    node = await make_node()
    try:
        admin = await _admin(api)
        _, endpoint = await api.call("POST", "/admin/webhooks", admin, json={"url": receiver.url})
        room = "hooks-room"
        host = await node.connect(token("host", room, publish=True, verified=True))
        await host.ok("show.create")
        offer = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\n"
        await host.ok("show.publish", room=room, sdp=offer)
        await host.ok("show.publish", room=room, sdp=offer)  # renegotiated: no new track, no new event
        viewer = await node.connect(token("viewer", room, subscribe=True))
        await viewer.ok("show.join", room=room)
        mod = await node.connect(token("mod", room, subscribe=True, hidden=True, moderate=True))
        await mod.ok("show.join", room=room)
        await mod.ok("show.subscribe", room=room)
        await mod.ok("show.leave", room=room)
        await viewer.ok("show.leave", room=room)
        await host.ok("show.end", room=room)

        def finished() -> list[dict[str, Any]]:
            return receiver.delivered(lambda e: e["type"] == "room_finished")
        await until(finished, "room_finished")
        await until(lambda: len(receiver.delivered()) >= 8, "every room fact")
        events = [verify(r.raw, r.headers[HEADER], endpoint["secret"]) for r in receiver.got]
        mine = {e["id"]: e for e in events if e["data"].get("room") == room}
        kinds = Counter((e["type"], e["data"].get("user"), e["data"].get("kind")) for e in mine.values())
        assert kinds == Counter({
            ("room_started", "host", None): 1, ("room_finished", "host", None): 1,
            ("participant_joined", "host", None): 1, ("participant_joined", "viewer", None): 1,
            ("participant_left", "viewer", None): 1, ("participant_left", "host", None): 1,
            ("track_published", "host", "audio"): 1, ("track_published", "host", "video"): 1,
        })
        # The moderator's tap is nowhere: not in a delivery, not in the stream the node wrote.
        assert all(b"mod" not in r.raw for r in receiver.got)
        stream = await redis.xrange(EVENTS_STREAM)
        room_entries = [f for _, f in stream if f[b"type"].decode() in {t.value for t in EventType}
                        and f[b"type"] not in (b"tap_opened", b"tap_closed")]
        assert room_entries and all(b'"mod"' not in f[b"data"] for f in room_entries)
        assert any(f[b"type"] == b"tap_opened" for _, f in stream) is False  # fake SFU: no tap audit either

        # The matchmaker's pairing (its Lua's fields) becomes match_made.
        await redis.xadd(EVENTS_STREAM, {"type": "match.paired", "session_id": "s-1", "a": str(uuid.uuid4()),
                                         "b": str(uuid.uuid4()), "at_us": "1"})
        made = await until(lambda: receiver.delivered(lambda e: e["type"] == "match_made"), "match_made")
        assert made[0]["data"]["session_id"] == "s-1"
    finally:
        receiver.release.set()
        await receiver.server.close()


async def test_a_replayed_node_event_is_recorded_once(make_api: MakeApi) -> None:
    api = await make_api()
    admin = await _admin(api)
    await api.call("POST", "/admin/webhooks", admin, json={"url": "http://127.0.0.1:9/none"})
    consumer_fields = encode(RoomEvent(EventType.ROOM_STARTED, id="evt_replayed", room="r1", at_ms=1, user="u"))
    from control_api.events import EventsConsumer

    consumer = EventsConsumer(services(api))
    assert await consumer.handle("1-1", consumer_fields) is True
    assert await consumer.handle("1-1", consumer_fields) is False  # the stream gave it again
    assert await consumer.handle("2-1", consumer_fields) is False  # written twice by the node: same event id
    async with services(api).sessions() as session:
        assert await session.scalar(select(func.count()).select_from(WebhookEvent)) == 1
        assert await session.scalar(select(func.count()).select_from(WebhookDelivery)) == 1


async def test_pending_deliveries_survive_a_restart_and_two_processes_never_claim_one(make_api: MakeApi) -> None:
    receiver = await start_receiver()
    api = await make_api()  # its dispatcher is off: the deliveries wait, as after a crash
    try:
        sessions = services(api).sessions
        async with sessions() as session, session.begin():
            session.add(WebhookEndpoint(url=receiver.url, events=[], secret="whsec_x"))
        async with sessions() as session, session.begin():
            for i in range(12):
                await record(session, "room_started", {"room": f"r{i}"})
        first, second = Dispatcher(sessions, FAST), Dispatcher(sessions, FAST)
        a, b = await asyncio.gather(first.claim(8), second.claim(8))
        ids = [c.delivery_id for c in a + b]
        assert len(ids) == len(set(ids)) == 12  # SKIP LOCKED: each row to one process
        # Those claims died with their "process": a new one takes the rows once their lease ends.
        async with sessions() as session, session.begin():
            await session.execute(WebhookDelivery.__table__.update().values(next_attempt_at=func.now()))
        registry = CollectorRegistry()
        restarted = Dispatcher(sessions, FAST, WebhookMetrics(registry))
        task = asyncio.create_task(restarted.run())
        try:
            await until(lambda: len({e["id"] for e in receiver.delivered()}) == 12, "all twelve events")
            # The dispatcher records a delivery after the receiver's answer: wait before stopping it.
            await until(lambda: registry.get_sample_value("webhook_delivery_seconds_count") == 12, "the metrics")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert Counter(e["type"] for e in receiver.delivered()) == Counter({"room_started": 12})
        assert registry.get_sample_value("webhook_attempts_total", {"outcome": "ok"}) == 12
    finally:
        await receiver.server.close()


async def test_a_saved_clip_is_an_event_once(make_api: MakeApi, redis: Any) -> None:
    from control_api.clips import ClipIngest
    from switchboard.keyspace import clip

    api = await make_api()
    clip_id = uuid.uuid4().hex
    fields = {"data": b"\x1a\x45\xdf\xa3webm", "content_type": "video/webm", "room": "show-evidence",
              "duration_ms": "3000", "tracks": "2"}
    ingest = ClipIngest(services(api))
    for _ in range(2):  # a node that handed the same clip over twice
        await redis.hset(clip(clip_id), mapping=fields)
        assert await ingest.ingest(clip_id) is True
    async with services(api).sessions() as session:
        rows = list(await session.scalars(select(WebhookEvent).where(WebhookEvent.type == "clip_saved")))
    assert [(r.id, r.data) for r in rows] == [(f"evt_clip_{clip_id}", {
        "clip_id": clip_id, "room": "show-evidence", "duration_ms": 3000, "tracks": 2})]


async def test_old_events_are_pruned_unless_still_pending(make_api: MakeApi) -> None:
    api = await make_api()
    sessions = services(api).sessions
    async with sessions() as session, session.begin():
        session.add(WebhookEndpoint(url="http://127.0.0.1:9/none", events=[], secret="whsec_x"))
    async with sessions() as session, session.begin():
        old_done = await record(session, "room_started", {"room": "a"})
        old_pending = await record(session, "room_started", {"room": "b"})
        fresh = await record(session, "room_started", {"room": "c"})
    async with sessions() as session, session.begin():
        await session.execute(WebhookEvent.__table__.update().where(WebhookEvent.id.in_([old_done, old_pending]))
                              .values(created_at=func.now() - text("interval '40 days'")))
        await session.execute(WebhookDelivery.__table__.update().where(WebhookDelivery.event_id == old_done)
                              .values(status="delivered"))
    assert await Dispatcher(sessions, FAST).prune() == 1
    async with sessions() as session:
        left = set(await session.scalars(select(WebhookEvent.id)))
    assert left == {old_pending, fresh}
