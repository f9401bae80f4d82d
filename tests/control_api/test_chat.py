"""Chat through HTTP: 1:1 and groups, realtime delivery through Redis, pages, receipts, unread, blocks."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from switchboard.keyspace import user_channel
from tests.control_api.conftest import ON_CLUSTER_TOO, Api
from tests.control_api.test_profiles import tiny_png


async def _next_message(pubsub: Any) -> dict[str, Any]:
    async with asyncio.timeout(5.0):
        while True:
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if msg is not None:
                return json.loads(msg["data"])


@ON_CLUSTER_TOO
async def test_direct_conversation_realtime_and_unread(api: Api, redis: Any) -> None:
    a, b = await api.user("anna"), await api.user("bert")
    status, conv = await api.call("POST", "/conversations", a, json={"members": [b.id]})
    assert status == 201 and conv["kind"] == "direct"
    status, again = await api.call("POST", "/conversations", b, json={"members": [a.id]})
    assert status == 200 and again["id"] == conv["id"]  # one 1:1 per pair
    pubsub = redis.pubsub()
    await pubsub.subscribe(user_channel(b.id))
    try:
        status, sent = await api.call("POST", f"/conversations/{conv['id']}/messages", a, json={"text": "hello"})
        assert status == 201
        pushed = await _next_message(pubsub)
        assert pushed["type"] == "chat.message" and pushed["message"]["text"] == "hello"
    finally:
        await pubsub.aclose()
    listing = (await api.call("GET", "/conversations", b))[1]
    assert listing["unread_total"] == 1 and listing["items"][0]["unread"] == 1
    status, read = await api.call("POST", f"/conversations/{conv['id']}/read", b, json={"message_id": sent["id"]})
    assert read["last_read_id"] == sent["id"]
    assert (await api.call("GET", "/conversations", b))[1]["unread_total"] == 0
    detail = (await api.call("GET", f"/conversations/{conv['id']}", a))[1]
    assert {m["user_id"]: m["last_read_id"] for m in detail["members"]}[b.id] == sent["id"]


@ON_CLUSTER_TOO
async def test_offline_recipient_gets_a_notification(api: Api) -> None:
    a, b = await api.user("ola"), await api.user("pia")
    conv = (await api.call("POST", "/conversations", a, json={"members": [b.id]}))[1]
    await api.call("POST", f"/conversations/{conv['id']}/messages", a, json={"text": "are you there"})
    kinds = [n["kind"] for n in (await api.call("GET", "/notifications", b))[1]["items"]]
    assert "message" in kinds


async def test_cursor_pagination(api: Api) -> None:
    a, b = await api.user("pag1"), await api.user("pag2")
    conv = (await api.call("POST", "/conversations", a, json={"members": [b.id]}))[1]
    for i in range(7):
        await api.call("POST", f"/conversations/{conv['id']}/messages", a, json={"text": f"m{i}"})
    seen, cursor = [], None
    while True:
        path = f"/conversations/{conv['id']}/messages?limit=3" + (f"&before={cursor}" if cursor else "")
        status, page = await api.call("GET", path, b)
        assert status == 200, page
        seen += [m["text"] for m in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"m{i}" for i in reversed(range(7))]


async def test_group_and_attachments(api: Api) -> None:
    a, b, c = await api.user("grp1"), await api.user("grp2"), await api.user("grp3")
    status, conv = await api.call("POST", "/conversations", a, json={"members": [b.id, c.id], "title": "trio"})
    assert status == 201 and conv["kind"] == "group" and len(conv["members"]) == 3
    status, media = await api.call("POST", "/media", a, data=tiny_png(), headers={"Content-Type": "image/png"})
    assert status == 201
    status, private = await api.call("POST", "/media", a, data=tiny_png(), headers={"Content-Type": "image/png"})
    body = {"text": "pics", "attachments": [{"media_id": media["id"]}, {"media_id": private["id"], "private": True}]}
    status, msg = await api.call("POST", f"/conversations/{conv['id']}/messages", a, json=body)
    assert status == 201, msg
    seen = (await api.call("GET", f"/conversations/{conv['id']}/messages", b))[1]["items"][0]
    by_id = {att["media_id"]: att for att in seen["attachments"]}
    assert by_id[private["id"]]["url"] is None and by_id[private["id"]]["private"] is True
    assert (await api.client.get(by_id[media["id"]]["url"], headers=b.auth)).status == 200
    assert (await api.call("GET", f"/media/{private['id']}", b))[0] == 403
    outsider = await api.user("grp4")
    assert (await api.call("GET", f"/media/{media['id']}", outsider))[0] == 404
    status, err = await api.call("POST", f"/conversations/{conv['id']}/messages", b,
                                 json={"attachments": [{"media_id": media["id"]}]})
    assert status == 422 and err["errors"][0]["field"] == "attachments[0].media_id"


async def test_blocked_users_invisible_in_chat(api: Api) -> None:
    a, b, c = await api.user("blk1"), await api.user("blk2"), await api.user("blk3")
    direct = (await api.call("POST", "/conversations", a, json={"members": [b.id]}))[1]
    group = (await api.call("POST", "/conversations", a, json={"members": [b.id, c.id]}))[1]
    await api.call("POST", f"/conversations/{group['id']}/messages", b, json={"text": "from b"})
    await api.call("POST", f"/users/{b.id}/block", a)
    assert (await api.call("GET", f"/conversations/{direct['id']}", a))[0] == 404
    assert (await api.call("POST", f"/conversations/{direct['id']}/messages", b, json={"text": "hi"}))[0] == 404
    assert [i["id"] for i in (await api.call("GET", "/conversations", a))[1]["items"]] == [group["id"]]
    texts = [m["text"] for m in (await api.call("GET", f"/conversations/{group['id']}/messages", a))[1]["items"]]
    assert texts == []
    assert (await api.call("POST", "/conversations", a, json={"members": [b.id]}))[0] == 404
    texts = [m["text"] for m in (await api.call("GET", f"/conversations/{group['id']}/messages", c))[1]["items"]]
    assert texts == ["from b"]
