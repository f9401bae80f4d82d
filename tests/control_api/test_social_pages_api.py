"""The small API pieces the social pages need: a profile's ``relation`` (the caller's own view of the
pair), the blocked list with pseudos, adding members to a group (never across a block), and the
``call_missed`` notification made from the nodes' event."""

from __future__ import annotations

import json
from typing import Any

from control_api.events import EventsConsumer
from control_api.services import SERVICES
from switchboard.keyspace import EVENTS_STREAM
from tests.control_api.conftest import Api


async def test_profile_relation_is_the_callers_view(api: Api) -> None:
    a, b = await api.user("relann"), await api.user("relben")
    relation = (await api.call("GET", f"/users/{b.id}", a))[1]["relation"]
    assert relation == {"following": "none", "follows_me": False, "liked": False}
    await api.call("POST", f"/users/{b.id}/follow", a)
    await api.call("POST", f"/users/{b.id}/like", a)
    assert (await api.call("GET", f"/users/{b.id}", a))[1]["relation"] == {
        "following": "pending", "follows_me": False, "liked": True}
    assert (await api.call("GET", f"/users/{a.id}", b))[1]["relation"] == {
        "following": "none", "follows_me": False, "liked": False}  # a pending request is no follow yet
    await api.call("POST", f"/users/{a.id}/follow", b)  # both asked: friends
    assert (await api.call("GET", f"/users/{b.id}", a))[1]["relation"]["following"] == "accepted"
    assert (await api.call("GET", f"/users/{b.id}", a))[1]["relation"]["follows_me"] is True


async def test_blocks_list_names_the_blocked(api: Api) -> None:
    a, b, c = await api.user("blkann"), await api.user("blkben"), await api.user()
    await api.call("POST", f"/users/{b.id}/block", a)
    await api.call("POST", f"/users/{c.id}/block", a)
    body = (await api.call("GET", "/me/blocks", a))[1]
    assert body["items"] == [c.id, b.id]
    assert body["people"] == [{"id": c.id, "pseudo": None}, {"id": b.id, "pseudo": "blkben"}]


async def test_group_members_are_added_never_across_a_block(api: Api) -> None:
    a, b, c, d = (await api.user("grpann"), await api.user("grpben"), await api.user("grpcat"),
                  await api.user("grpdan"))
    status, conv = await api.call("POST", "/conversations", a, json={"members": [b.id], "title": "trip"})
    assert status == 201 and conv["kind"] == "group"
    await api.call("POST", f"/conversations/{conv['id']}/messages", a, json={"text": "before"})
    status, body = await api.call("POST", f"/conversations/{conv['id']}/members", b, json={"members": [c.id]})
    assert status == 200
    assert {m["user_id"] for m in body["members"]} == {a.id, b.id, c.id}
    listed = (await api.call("GET", "/conversations", c))[1]
    assert [i["id"] for i in listed["items"]] == [conv["id"]] and listed["unread_total"] == 0
    await api.call("POST", f"/users/{a.id}/block", d)
    assert (await api.call("POST", f"/conversations/{conv['id']}/members", a, json={"members": [d.id]}))[0] == 404
    assert (await api.call("POST", f"/conversations/{conv['id']}/members", d, json={"members": [d.id]}))[0] == 404
    _, direct = await api.call("POST", "/conversations", a, json={"members": [b.id]})
    assert (await api.call("POST", f"/conversations/{direct['id']}/members", a, json={"members": [c.id]}))[0] == 422


async def test_a_missed_call_is_a_notification_for_the_callee_not_across_a_block(api: Api, redis: Any) -> None:
    a, b, c = await api.user("misann"), await api.user("misben"), await api.user("miscat")
    consumer = EventsConsumer(api.app._subapps[0][SERVICES], name="missed")  # type: ignore[attr-defined]
    await consumer.ensure_group()
    await api.call("POST", f"/users/{a.id}/block", c)
    for caller, callee in ((a, b), (a, c)):
        data = {"from": caller.id, "to": callee.id, "call_id": "call_x", "at_ms": 1}
        await redis.xadd(EVENTS_STREAM, {"type": "call_missed", "data": json.dumps(data)})
    await consumer.process_once()
    notes = (await api.call("GET", "/notifications", b))[1]["items"]
    assert [(n["kind"], n["data"]) for n in notes if n["kind"] == "call_missed"] == [
        ("call_missed", {"user_id": a.id, "call_id": "call_x"})]
    assert not [n for n in (await api.call("GET", "/notifications", c))[1]["items"] if n["kind"] == "call_missed"]
