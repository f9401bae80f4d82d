"""Show chat moderation is audited through the real events stream: a node (writer) takes each act of
the owner or a hidden moderator and writes one ``show_moderated`` entry; the API's consumer (reader)
makes it one audit row (actor the real account, even for a hidden moderator whom viewers saw only as
"moderator"), once however often the stream delivers it."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from control_api.events import EventsConsumer
from control_api.models import AuditEntry
from switchboard.events import EventType, ModerationEvent, decode
from switchboard.keyspace import EVENTS_STREAM
from tests.control_api.conftest import Api
from tests.control_api.live_node import api_node, in_room, live_show  # noqa: F401 - the fixture
from tests.control_api.moderation import make_staff, services
from tests.signaling.conftest import Node


async def test_each_act_of_an_owner_or_hidden_moderator_is_one_audit_row(
        api_node: tuple[Api, Node], redis: Any) -> None:  # noqa: F811
    api, node = api_node
    host, ann, ben = await api.user(), await api.user(), await api.user()
    mod = await make_staff(api, await api.user())
    consumer = EventsConsumer(services(api), name="mod-audit")
    await consumer.ensure_group()
    room, owner, (pa, pb) = await live_show(api, node, host, ann, ben)
    tap = await in_room(api, node, mod, room, "hidden")
    assert (await tap.ok("show.join", room=room))["hidden"] is True

    spam = await pb.ok("show.chat", room=room, text="buy coins\x00 now")
    welcome = await pa.ok("show.chat", room=room, text="welcome")
    await tap.ok("show.chat_delete", room=room, message_id=spam["id"])
    assert (await pa.expect("show.chat_deleted", message_id=spam["id"]))["by"] == "moderator"
    await tap.ok("show.mute", room=room, user=ben.id, minutes=5)
    await owner.ok("show.chat_pin", room=room, message_id=welcome["id"])
    await owner.ok("show.kick", room=room, user=ben.id, minutes=3)
    assert (await pb.expect("show.ended", room=room))["reason"] == "removed"

    await consumer.process_once()
    async with services(api).sessions() as session:
        rows = list(await session.scalars(select(AuditEntry).where(AuditEntry.action.like("show.%"))
                                          .order_by(AuditEntry.id)))
    assert [(r.action, r.actor_id, r.subject) for r in rows] == [
        ("show.delete", uuid.UUID(mod.id), ben.id), ("show.mute", uuid.UUID(mod.id), ben.id),
        ("show.pin", uuid.UUID(host.id), ann.id), ("show.kick", uuid.UUID(host.id), ben.id)]
    delete, mute, pin, kick = (r.detail for r in rows)
    assert (delete["room"], delete["role"], delete["hidden"], delete["message_id"]) == (room, "moderator", True,
                                                                                         spam["id"])
    assert delete["text"] == "buy coins\ufffd now"  # the evidence, as Postgres can hold it
    assert mute["until"] > 0 and mute["message_id"] is None
    assert (pin["role"], pin["hidden"], pin["text"], pin["message_id"]) == ("owner", False, "welcome", welcome["id"])
    assert kick["until"] > 0 and kick["room"] == room

    # The staff read them through the audit API; a replayed entry writes nothing more.
    status, page = await api.call("GET", f"/moderation/audit?action=show.&subject={ben.id}", mod)
    assert status == 200 and [e["action"] for e in page["items"]] == ["show.kick", "show.mute", "show.delete"]
    entries = await redis.xrange(EVENTS_STREAM)
    moderated = [(i, f) for i, f in entries if isinstance(decode(f), ModerationEvent)]
    assert len(moderated) == 4 and all(decode(f).type is EventType.SHOW_MODERATED for _, f in moderated)
    assert await consumer.handle(moderated[0][0].decode(), moderated[0][1]) is False
    async with services(api).sessions() as session:
        again = list(await session.scalars(select(AuditEntry.id).where(AuditEntry.action.like("show.%"))))
    assert len(again) == 4
