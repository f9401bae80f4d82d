"""Moderation and webhook answers are what /api/openapi.json says (``control_api/responses/moderation.py``):
one walk through every such operation, with lists that are not empty and nullable fields filled, each
answer validated by the ``conformance`` fixture; the walk then shows that each operation was checked."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from control_api.app import all_routes
from control_api.models import Role
from control_api.openapi import document, openapi_path
from control_api.responses import moderation, money
from signaling.clips import ClipDesk
from tests.control_api.conformance import Conformance
from tests.control_api.conftest import Api
from tests.control_api.moderation import make_staff, watched
from tests.control_api.test_clips import OneClipMedia
from tests.control_api.webhook_receiver import FAST, start_receiver, until


def test_money_and_moderation_operations_have_ids_of_their_own() -> None:
    """OpenAPI wants each operationId unique: none of these shares its id with another operation."""
    routes = all_routes()
    mine = {r.operation_id for r in routes if (r.method, openapi_path(r.path)) in {*money.RESPONSES,
                                                                                   *moderation.RESPONSES}}
    ids = [r.operation_id for r in routes]
    assert len(mine) == len(money.RESPONSES) + len(moderation.RESPONSES)
    assert [i for i in ids if i in mine and ids.count(i) > 1] == []


def test_a_repeated_report_is_documented_as_200_with_the_same_shape() -> None:
    answers = document(all_routes())["paths"]["/reports"]["post"]["responses"]
    assert answers["200"]["content"] == answers["201"]["content"] == {
        "application/json": {"schema": moderation.RESPONSES[("POST", "/reports")]}}


async def test_every_moderation_and_webhook_answer_conforms(make_api: Callable[..., Awaitable[Api]], redis: Any,
                                                           conformance: Conformance) -> None:
    receiver = await start_receiver()
    api = await make_api(dispatch_webhooks=True, webhooks=FAST)
    desk = ClipDesk(OneClipMedia(), redis)  # type: ignore[arg-type]  # a node's clip desk with one room's media
    await desk.start()
    try:
        admin = await make_staff(api, await api.user(), Role.ADMIN)
        ann, bob = await api.user("ann"), await api.user("bob")

        async def ok(method: str, path: str, user: Any, want: int = 200, **kw: Any) -> Any:
            status, body = await api.call(method, path, user, **kw)
            assert status == want, (method, path, status, body)
            return body

        endpoint = await ok("POST", "/admin/webhooks", admin, 201,
                            json={"url": receiver.url, "events": ["report_created"], "description": "walk"})
        assert (await ok("GET", "/admin/webhooks", admin))["items"]

        # A report on a message (its detail carries the message), a repeat (200), a live one with a clip.
        conv = await ok("POST", "/conversations", bob, 201, json={"members": [ann.id]})
        msg = await ok("POST", f"/conversations/{conv['id']}/messages", bob, 201, json={"text": "coins!"})
        report = await ok("POST", "/reports", ann, 201, json={"message_id": msg["id"], "reason": "spam_scam"})
        await ok("POST", "/reports", ann, 200, json={"message_id": msg["id"], "reason": "spam_scam"})
        await watched(api, redis, bob, ann, name="show-evidence")  # bob's show, which ann watched
        live = await ok("POST", "/reports", ann, 201, json={"user_id": bob.id, "room": "show-evidence",
                                                           "reason": "harassment"})
        clip = await ok("POST", "/moderation/clips", admin, 201, json={"room": "show-evidence",
                                                                       "report_id": live["id"]})
        assert (await ok("GET", f"/moderation/clips/{clip['id']}", admin))["moderator_id"] == admin.id

        claimed = await ok("POST", f"/moderation/reports/{report['id']}/claim", admin)
        assert claimed["claimed_by"] == admin.id
        done = await ok("POST", f"/moderation/reports/{report['id']}/action", admin,
                        json={"sanction": {"kind": "mute", "duration": "1h"}, "note": "spam"})
        assert done["sanction_id"] and done["closed_at"]
        assert (await ok("POST", f"/moderation/reports/{live['id']}/dismiss", admin, json={}))["clip"]
        detail = await ok("GET", f"/moderation/reports/{report['id']}", admin)
        context = detail["context_detail"]
        assert context["message"]["text"] == "coins!" and context["prior_reports"] and context["sanctions"]
        assert context["target"]["profile"]["pseudo"] == "bob"
        page = await ok("GET", "/moderation/reports?limit=1", admin)
        assert len(page["items"]) == 1 and page["next_cursor"]

        warning = await ok("POST", f"/moderation/accounts/{ann.id}/sanctions", admin, 201,
                           json={"kind": "warning", "reason": "be kind"})
        ban = await ok("POST", f"/moderation/accounts/{ann.id}/sanctions", admin, 201,
                       json={"kind": "ban", "duration": "24h", "reason": "walk"})
        assert warning["ends_at"] is None and ban["ends_at"]
        lifted = await ok("POST", f"/moderation/sanctions/{ban['id']}/lift", admin, json={"reason": "appeal"})
        assert lifted["lifted_by"] == admin.id and not lifted["active"]
        assert len((await ok("GET", f"/moderation/accounts/{ann.id}/sanctions", admin))["items"]) == 2
        assert (await ok("GET", "/moderation/sanctions?active=false&limit=100", admin))["items"]
        audit = await ok("GET", "/moderation/audit?limit=2", admin)
        assert len(audit["items"]) == 2 and audit["next_cursor"]
        stats = await ok("GET", "/moderation/stats", admin)
        assert stats["actions_today"][admin.id] >= 3

        await until(lambda: receiver.delivered(), "a report_created delivery")
        deliveries = await ok("GET", f"/admin/webhooks/{endpoint['id']}/deliveries", admin)
        assert deliveries["items"] and deliveries["items"][0]["status_code"] == 204
        rotated = await ok("POST", f"/admin/webhooks/{endpoint['id']}/rotate", admin)
        assert rotated["secret"] != endpoint["secret"]
    finally:
        await desk.close()
        await receiver.server.close()

    assert conformance.checked >= set(moderation.RESPONSES), set(moderation.RESPONSES) - conformance.checked
    assert not conformance.broken, conformance.broken
