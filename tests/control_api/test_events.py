"""The events-stream consumer against real Redis and Postgres: at-least-once, idempotent handlers."""

from __future__ import annotations

import json
import uuid
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from control_api.events import EventsConsumer
from control_api.models import AuditEntry
from control_api.services import SERVICES
from control_api.social_models import Follow
from sfu.events import RedisEventSink
from sfu.types import PeerId
from sfu.worker import Worker
from switchboard.events import EventType, TapEvent, decode, encode
from switchboard.ids import RoomId, UserId
from switchboard.keyspace import EVENTS_GROUP_API, EVENTS_STREAM
from tests.control_api.conftest import ON_CLUSTER_TOO, Api
from tests.sfu.peers import MovingVideo, client_pc


@given(st.dictionaries(st.one_of(st.text(), st.binary()), st.one_of(st.text(), st.binary())))
def test_decode_never_crashes_unexpectedly(fields: dict[Any, Any]) -> None:
    try:
        event = decode(fields)
    except (ValueError, UnicodeDecodeError):
        return
    assert event.type


@ON_CLUSTER_TOO
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


@ON_CLUSTER_TOO
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
    """A node's tap events, written in the shared schema, become one audit row each, however often
    the stream delivers them."""
    mod, star = await api.user(), await api.user()
    services = api.app._subapps[0][SERVICES]  # type: ignore[attr-defined]
    consumer = EventsConsumer(services, name="t2")
    await consumer.ensure_group()
    opened = TapEvent(EventType.TAP_OPENED, moderator=mod.id, room="call-3", peer="s1", at_ms=1_000,
                      publishers=(star.id,))
    closed = TapEvent(EventType.TAP_CLOSED, moderator=mod.id, room="call-3", peer="s1", at_ms=9_000,
                      publishers=(star.id,), opened_at_ms=1_000)
    ids = [(await redis.xadd(EVENTS_STREAM, encode(e))).decode() for e in (opened, closed)]
    assert await consumer.process_once() == 2
    assert await consumer.handle(ids[0], encode(opened)) is False
    async with services.sessions() as session:
        rows = list(await session.scalars(select(AuditEntry).where(AuditEntry.subject == "call-3")
                                          .order_by(AuditEntry.id)))
    assert [(r.action, r.actor_id, r.event_id) for r in rows] == [
        ("tap.opened", uuid.UUID(mod.id), ids[0]), ("tap.closed", uuid.UUID(mod.id), ids[1])]
    assert rows[0].detail["publishers"] == [star.id]
    assert (rows[1].detail["opened_at_ms"], rows[1].detail["at_ms"]) == (1_000, 9_000)


async def test_a_tap_through_the_sfu_is_audited(api: Api, redis: Any) -> None:
    """End to end through the real stream: the SFU (writer) opens and closes a hidden subscriber, the
    API's consumer (reader) reads the stream, Postgres holds who tapped whom, when, and until when."""
    mod, star = await api.user(), await api.user()
    services = api.app._subapps[0][SERVICES]  # type: ignore[attr-defined]
    consumer = EventsConsumer(services, name="t3")
    await consumer.ensure_group()
    worker = Worker(addresses=("127.0.0.1",), events=RedisEventSink(redis))
    await worker.start()
    pc = client_pc()
    try:
        pc.addTrack(MovingVideo(160, 120))
        await pc.setLocalDescription(await pc.createOffer())
        room = RoomId("show-audited")
        await worker.open_room(room)
        await worker.publish(room, PeerId("star"), UserId(star.id), pc.localDescription.sdp)
        await worker.subscribe(room, PeerId("tap"), UserId(mod.id), hidden=True)
        await worker.subscribe(room, PeerId("fan"), UserId(star.id))  # a visible viewer: no audit
        await worker.close_peer(room, PeerId("tap"))
    finally:
        await worker.close()
        await pc.close()
    assert await consumer.process_once() == 2
    async with services.sessions() as session:
        rows = list(await session.scalars(select(AuditEntry).where(AuditEntry.subject == "show-audited")
                                          .order_by(AuditEntry.id)))
    assert [(r.action, r.actor_id) for r in rows] == [("tap.opened", uuid.UUID(mod.id)),
                                                      ("tap.closed", uuid.UUID(mod.id))]
    assert [r.detail["publishers"] for r in rows] == [[star.id], [star.id]]
    assert rows[1].detail["opened_at_ms"] == rows[0].detail["at_ms"] <= rows[1].detail["at_ms"]


ANY_TEXT = st.text(st.characters(exclude_categories=()))
"""Arbitrary unicode, lone surrogates and NUL included."""


@given(st.dictionaries(st.sampled_from(["moderator", "room", "peer", "at_ms", "publishers", "opened_at_ms", "x"]),
                       st.one_of(ANY_TEXT, st.integers(), st.none(), st.lists(ANY_TEXT, max_size=3))),
       st.sampled_from(["tap_opened", "tap_closed", "like", "follow_request", "match.paired"]))
def test_decode_validates_or_refuses(data: dict[str, Any], kind: str) -> None:
    """Whatever a writer put in an entry, the reader gets a valid event or a ValueError, never a value
    Postgres would refuse (lone surrogates, NUL) and never another exception."""
    try:
        event = decode({"type": kind, "data": json.dumps(data)})
    except ValueError:
        return
    if isinstance(event, TapEvent):
        for text in (event.moderator, event.room, event.peer, *event.publishers):
            text.encode("utf-8")
            assert "\x00" not in text
        assert decode(encode(event)) == event


async def test_odd_tap_entries_are_audited_or_dropped_never_retried(api: Api, redis: Any) -> None:
    """Through Postgres: the longest and widest text the schema takes is stored; what it refuses (NUL,
    a lone surrogate, too long, a wrong type) is acknowledged without a row, never a poison entry."""
    mod = await api.user()
    services = api.app._subapps[0][SERVICES]  # type: ignore[attr-defined]
    consumer = EventsConsumer(services, name="t4")
    await consumer.ensure_group()
    good = ["ü" * 200, "😀" * 200, "שלום room ‮", "call_" + "x" * 195]
    bad: list[Any] = ["a\x00b", "\ud800", "x" * 201, "", 42, None]
    for room in good + bad:
        data = {"moderator": mod.id, "room": room, "peer": "p", "at_ms": 1, "publishers": [mod.id]}
        await redis.xadd(EVENTS_STREAM, {"type": "tap_opened", "data": json.dumps(data)})  # "\ud800" escaped
    await redis.xadd(EVENTS_STREAM, {"type": "tap_closed", "data": json.dumps({"moderator": mod.id, "room": "r",
                                                                               "peer": "p", "at_ms": "soon"})})
    assert await consumer.process_once() == len(good) + len(bad) + 1
    assert (await redis.xpending(EVENTS_STREAM, EVENTS_GROUP_API))["pending"] == 0
    async with services.sessions() as session:
        rows = list(await session.scalars(select(AuditEntry).where(AuditEntry.action.like("tap.%"))
                                          .order_by(AuditEntry.id)))
    assert [r.subject for r in rows] == good
