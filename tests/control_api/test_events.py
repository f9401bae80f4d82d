"""The events-stream consumer against real Redis and Postgres: at-least-once, idempotent handlers."""

from __future__ import annotations

import json
import uuid
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from control_api.events import EventsConsumer, parse_entry
from control_api.models import AuditEntry, Follow
from control_api.services import SERVICES
from switchboard.keyspace import EVENTS_GROUP_API, EVENTS_STREAM
from tests.control_api.conftest import Api


@given(st.dictionaries(st.one_of(st.text(), st.binary()), st.one_of(st.text(), st.binary())))
def test_parse_entry_never_crashes_unexpectedly(fields: dict[Any, Any]) -> None:
    try:
        kind, data = parse_entry(fields)
    except (ValueError, UnicodeDecodeError):
        return
    assert kind and isinstance(data, dict)


async def test_like_and_follow_events_applied_once(api: Api, redis: Any) -> None:
    a, b = await api.user("eva"), await api.user("eli")
    services = api.app._subapps[0][SERVICES]  # type: ignore[attr-defined]
    consumer = EventsConsumer(services, name="t1")
    await consumer.ensure_group()
    like = {"type": "like", "data": json.dumps({"from": a.id, "to": b.id})}
    await redis.xadd(EVENTS_STREAM, like)
    await redis.xadd(EVENTS_STREAM, {"type": "follow_request", "data": json.dumps({"from": a.id, "to": b.id})})
    await redis.xadd(EVENTS_STREAM, {"type": "like", "data": "not json"})
    await redis.xadd(EVENTS_STREAM, {"type": "mystery", "data": "{}"})
    assert await consumer.process_once() == 4  # the malformed and unknown ones are acknowledged too
    assert (await redis.xpending(EVENTS_STREAM, EVENTS_GROUP_API))["pending"] == 0
    assert (await api.call("GET", f"/users/{b.id}", a))[1]["total_likes"] == 1
    assert [p["pseudo"] for p in (await api.call("GET", "/me/follow-requests", b))[1]["items"]] == ["eva"]
    # Redelivery of the same entry id (a consumer died before XACK) changes nothing.
    entries = await redis.xrange(EVENTS_STREAM, count=1)
    entry_id, fields = entries[0]
    assert await consumer.handle(entry_id.decode(), fields) is False
    assert (await api.call("GET", f"/users/{b.id}", a))[1]["total_likes"] == 1


async def test_pending_entries_of_a_dead_consumer_are_claimed(api: Api, redis: Any) -> None:
    a, b = await api.user("dd1"), await api.user("dd2")
    services = api.app._subapps[0][SERVICES]  # type: ignore[attr-defined]
    dead = EventsConsumer(services, name="dead")
    await dead.ensure_group()
    await redis.xadd(EVENTS_STREAM, {"type": "follow_request", "data": json.dumps({"from": a.id, "to": b.id})})
    # "dead" reads the entry and never acknowledges it.
    await redis.xreadgroup(EVENTS_GROUP_API, "dead", {EVENTS_STREAM: ">"}, count=10)
    alive = EventsConsumer(services, name="alive", claim_idle_ms=0)
    assert await alive.process_once() == 1
    async with services.sessions() as session:
        count = await session.scalar(select(func.count()).select_from(Follow))
    assert count == 1


async def test_tap_events_audited_once(api: Api, redis: Any) -> None:
    mod = await api.user()
    services = api.app._subapps[0][SERVICES]  # type: ignore[attr-defined]
    consumer = EventsConsumer(services, name="t2")
    await consumer.ensure_group()
    tap = {"type": "tap", "data": json.dumps({"moderator": mod.id, "room": "call-3", "action": "start"})}
    entry_id = (await redis.xadd(EVENTS_STREAM, tap)).decode()
    assert await consumer.process_once() == 1
    assert await consumer.handle(entry_id, tap) is False
    async with services.sessions() as session:
        rows = list(await session.scalars(select(AuditEntry).where(AuditEntry.action == "tap.start")))
    assert len(rows) == 1 and rows[0].actor_id == uuid.UUID(mod.id) and rows[0].event_id == entry_id
