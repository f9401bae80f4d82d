"""The audit log is append-only in the database itself (UPDATE, DELETE and TRUNCATE refused by a
trigger, whatever the client), and staff page and filter it through the API."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.control_api.conftest import Api
from tests.control_api.moderation import audit_rows, make_staff, services


async def test_update_delete_and_truncate_are_refused(api: Api) -> None:
    mod, bob = await make_staff(api, await api.user()), await api.user()
    await api.call("POST", f"/moderation/accounts/{bob.id}/sanctions", mod, json={"kind": "warning", "reason": "x"})
    [row] = await audit_rows(api, subject=bob.id)
    for statement in (f"UPDATE audit_log SET action = 'nothing' WHERE id = {row.id}",
                      f"DELETE FROM audit_log WHERE id = {row.id}",
                      "DELETE FROM audit_log",
                      "TRUNCATE audit_log"):
        async with services(api).sessions() as session:
            with pytest.raises(DBAPIError, match="append-only"):
                async with session.begin():
                    await session.execute(text(statement))
    [still] = await audit_rows(api, subject=bob.id)
    assert (still.id, still.action, still.detail) == (row.id, "sanction.warning", row.detail)


async def test_staff_page_and_filter_the_log(api: Api) -> None:
    mod, bob, ann = await make_staff(api, await api.user()), await api.user(), await api.user()
    _, report = await api.call("POST", "/reports", ann, json={"user_id": bob.id, "reason": "other"})
    await api.call("POST", f"/moderation/reports/{report['id']}/claim", mod)
    await api.call("POST", f"/moderation/reports/{report['id']}/dismiss", mod, json={"note": "nothing seen"})
    await api.call("POST", "/rooms/moderation/token", mod, json={"role": "hidden"})  # a hidden token: audited
    assert (await api.call("GET", "/moderation/audit", ann))[0] == 403

    status, page = await api.call("GET", f"/moderation/audit?actor_id={mod.id}&limit=2", mod)
    assert status == 200 and len(page["items"]) == 2 and page["next_cursor"]
    _, rest = await api.call("GET", f"/moderation/audit?actor_id={mod.id}&before={page['next_cursor']}", mod)
    actions = [e["action"] for e in page["items"] + rest["items"]]
    assert actions == ["token.hidden", "report.dismissed", "report.claimed"]
    _, reports = await api.call("GET", f"/moderation/audit?action=report.&subject={report['id']}", mod)
    assert [e["action"] for e in reports["items"]] == ["report.dismissed", "report.claimed"]
    assert reports["items"][0]["detail"]["note"] == "nothing seen"
    _, none = await api.call("GET", "/moderation/audit?since=2999-01-01", mod)
    assert none["items"] == []
