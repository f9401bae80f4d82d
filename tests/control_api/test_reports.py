"""Reports through HTTP: a user reports another (with the random-chat session id), moderators list
them, nobody reports themselves or a user who does not exist."""

from __future__ import annotations

import uuid

from control_api.models import Account, Role
from control_api.services import SERVICES
from tests.control_api.conftest import Api


async def test_report_a_stranger_and_moderators_read_it(api: Api) -> None:
    ann, bob, mod = await api.user(), await api.user(), await api.user()
    status, body = await api.call("POST", "/reports", ann,
                                  json={"user_id": bob.id, "session_id": "ses_1", "reason": "rude"})
    assert status == 201, body
    assert (body["user_id"], body["reporter_id"], body["session_id"]) == (bob.id, ann.id, "ses_1")
    assert body["status"] == "open"
    await api.call("POST", f"/users/{bob.id}/block", ann)
    status, _ = await api.call("POST", "/reports", ann, json={"user_id": bob.id, "room": "show-1", "reason": "again"})
    assert status == 201  # blocking someone does not stop reporting them

    assert (await api.call("POST", "/reports", ann, json={"user_id": ann.id, "reason": "me"}))[0] == 422
    assert (await api.call("POST", "/reports", ann, json={"user_id": str(uuid.uuid4()), "reason": "x"}))[0] == 404
    assert (await api.call("POST", "/reports", ann, json={"user_id": bob.id, "reason": ""}))[0] == 422
    assert (await api.call("POST", "/reports", json={"user_id": bob.id, "reason": "x"}))[0] == 401

    assert (await api.call("GET", "/moderation/reports", ann))[0] == 403
    services = api.app._subapps[0][SERVICES]  # type: ignore[attr-defined]
    async with services.sessions() as session, session.begin():
        account = await session.get(Account, uuid.UUID(mod.id))
        assert account is not None
        account.role = Role.MODERATOR
    status, body = await api.call("GET", "/moderation/reports?limit=1", mod)
    assert status == 200 and [r["room"] for r in body["items"]] == ["show-1"] and body["next_cursor"]
    status, body = await api.call("GET", f"/moderation/reports?before={body['next_cursor']}", mod)
    assert [r["session_id"] for r in body["items"]] == ["ses_1"] and body["next_cursor"] is None
