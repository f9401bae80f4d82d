"""Sanctions imposed through the API act live on a real node: a muted user's chat is refused (call
and show chat, and the API's messages), a warned user's socket gets the warning, a lift restores
chat, a ban closes the socket; each act leaves its audit row, and bad input changes nothing."""

from __future__ import annotations

from typing import Any

from control_api.models import Sanction
from switchboard.keyspace import muted
from tests.control_api.conftest import ON_CLUSTER_TOO, Api, User
from tests.control_api.live_node import api_node, socket  # noqa: F401 - the fixture
from tests.control_api.moderation import audit_rows, make_staff, services
from tests.signaling.conftest import Node


async def sanction(api: Api, mod: User, user: User, **body: Any) -> dict[str, Any]:
    status, answer = await api.call("POST", f"/moderation/accounts/{user.id}/sanctions", mod, json=body)
    assert status == 201, answer
    return answer  # type: ignore[no-any-return]


@ON_CLUSTER_TOO
async def test_mute_refuses_chat_everywhere_until_lifted(api_node: tuple[Api, Node]) -> None:  # noqa: F811
    api, node = api_node
    ann, ben, mod = await api.user(), await api.user(), await make_staff(api, await api.user())
    pa, pb = await socket(api, node, ann), await socket(api, node, ben)
    call_id = (await pa.ok("call.invite", to=ben.id))["call_id"]
    await pb.expect("call.incoming", call_id=call_id)
    await pb.ok("call.accept", call_id=call_id)
    await pa.ok("call.chat", call_id=call_id, text="before")

    mute = await sanction(api, mod, ann, kind="mute", duration="1h", reason="insults")
    notice = await pa.expect("moderation.muted")
    assert notice["until"] is not None and 0 < await services(api).redis.ttl(muted(ann.id)) <= 3600
    refused = await pa.request("call.chat", call_id=call_id, text="still here?")
    assert (refused["type"], refused["code"]) == ("error", "muted")
    refused = await pa.request("show.chat", room="show-x", text="hi")
    assert refused["code"] == "muted"  # checked before anything else: no show needed
    # A socket opened later on is muted from its first frame (the node reads Redis at connect).
    second = await socket(api, node, ann)
    assert (await second.request("call.chat", call_id=call_id, text="other tab"))["code"] == "muted"
    # The API's own chat refuses too.
    _, conv = await api.call("POST", "/conversations", ann, json={"members": [ben.id]})
    status, problem = await api.call("POST", f"/conversations/{conv['id']}/messages", ann, json={"text": "dm"})
    assert status == 403 and "muted" in problem["detail"]
    assert (await pb.ok("call.chat", call_id=call_id, text="the other one talks"))  # only ann is muted

    status, lifted = await api.call("POST", f"/moderation/sanctions/{mute['id']}/lift", mod,
                                    json={"reason": "apologised"})
    assert status == 200 and lifted["active"] is False and lifted["lift_reason"] == "apologised"
    await pa.expect("moderation.unmuted")
    await pa.ok("call.chat", call_id=call_id, text="sorry")
    assert await services(api).redis.exists(muted(ann.id)) == 0
    status, _ = await api.call("POST", f"/conversations/{conv['id']}/messages", ann, json={"text": "dm"})
    assert status == 201
    # A second lift changes nothing.
    status, problem = await api.call("POST", f"/moderation/sanctions/{mute['id']}/lift", mod, json={"reason": "x"})
    assert status == 409 and "lifted already" in problem["detail"]
    assert [e.action for e in await audit_rows(api, subject=ann.id)] == ["sanction.mute", "sanction.lifted"]


@ON_CLUSTER_TOO
async def test_warning_reaches_the_open_socket_and_ban_closes_it(api_node: tuple[Api, Node]) -> None:  # noqa: F811
    api, node = api_node
    ann, mod = await api.user(), await make_staff(api, await api.user())
    peer = await socket(api, node, ann)
    await sanction(api, mod, ann, kind="warning", reason="Keep it civil.")
    assert (await peer.expect("moderation.warning"))["message"] == "Keep it civil."
    assert (await peer.ok("ping"))["pong"] is True  # a warning refuses nothing
    _, notes = await api.call("GET", "/notifications", ann)
    assert any(n["kind"] == "moderation_warning" for n in notes["items"])

    ban = await sanction(api, mod, ann, kind="ban", duration="24h", reason="again")
    assert (await peer.expect("error", ref=None))["code"] == "banned"
    assert await peer.closed() == 4003
    status, active = await api.call("GET", "/moderation/sanctions?kind=ban", mod)
    assert status == 200 and ban["id"] in [s["id"] for s in active["items"]]
    actions = [e.action for e in await audit_rows(api, subject=ann.id)]
    assert actions == ["sanction.warning", "sanction.ban"]


async def test_bad_sanctions_change_nothing(api_node: tuple[Api, Node]) -> None:  # noqa: F811
    api, _ = api_node
    ann, mod = await api.user(), await make_staff(api, await api.user())

    async def count() -> int:
        from sqlalchemy import func, select

        async with services(api).sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(Sanction)) or 0)

    before = await count()
    path = f"/moderation/accounts/{ann.id}/sanctions"
    assert (await api.call("POST", path, ann, json={"kind": "ban"}))[0] == 403  # not staff
    assert (await api.call("POST", path, mod, json={"kind": "jail"}))[0] == 422
    assert (await api.call("POST", path, mod, json={"kind": "mute", "duration": "2h"}))[0] == 422
    assert (await api.call("POST", path, mod, json={"kind": "mute", "duration": "1h", "duration_s": 5}))[0] == 422
    assert (await api.call("POST", f"/moderation/accounts/{mod.id}/sanctions", mod, json={"kind": "ban"}))[0] == 422
    assert (await api.call("POST", "/moderation/sanctions/999999999/lift", mod, json={"reason": "x"}))[0] == 404
    assert (await api.call("GET", "/moderation/sanctions", ann))[0] == 403
    assert await count() == before
    assert await audit_rows(api, subject=ann.id) == []
