"""Live reports against what a real node records: a 1:1 call's parties (its call hash) and a show's
visible members (the viewers set it keeps as they join), with the API's tokens on the node."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from control_api.models import Report
from switchboard import keyspace
from tests.control_api.conftest import ON_CLUSTER_TOO, Api
from tests.control_api.live_node import api_node, live_show, socket  # noqa: F401 - the fixture
from tests.control_api.moderation import make_staff, services
from tests.signaling.conftest import Node


async def _count(api: Api) -> int:
    async with services(api).sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Report)) or 0)


@ON_CLUSTER_TOO
async def test_a_calls_parties_and_a_shows_viewers_may_report_it(
        api_node: tuple[Api, Node], redis: Any) -> None:  # noqa: F811
    api, node = api_node
    ann, ben, eve, host = await api.user(), await api.user(), await api.user(), await api.user()
    mod = await make_staff(api, await api.user())
    pa, pb = await socket(api, node, ann), await socket(api, node, ben)
    call_id = (await pa.ok("call.invite", to=ben.id))["call_id"]
    await pb.expect("call.incoming", call_id=call_id)
    room, _host, _viewers = await live_show(api, node, host, ann)
    # A hidden moderator in the show is never one of its viewers.
    status, token = await api.call("POST", f"/rooms/{room}/token", mod, json={"role": "hidden"})
    assert status == 200
    tap = await node.connect(token["token"])
    await tap.ok("show.join", room=room)

    before = await _count(api)
    for who, body, code in ((eve, {"user_id": ann.id, "session_id": call_id}, 403),
                            (eve, {"user_id": host.id, "room": room}, 403),  # never joined
                            (ann, {"user_id": mod.id, "room": room}, 422),  # the tap was not a member
                            (ann, {"session_id": "call_" + "0" * 20}, 404)):
        status, problem = await api.call("POST", "/reports", who, json={**body, "reason": "other"})
        assert status == code and problem["status"] == code, (body, problem)
    assert await _count(api) == before

    status, by_callee = await api.call("POST", "/reports", ben, json={"session_id": call_id, "reason": "harassment"})
    assert status == 201 and by_callee["user_id"] == ann.id, by_callee
    status, by_viewer = await api.call("POST", "/reports", ann, json={"user_id": host.id, "room": room,
                                                                      "reason": "hate_violence"})
    assert status == 201 and by_viewer["room"] == room, by_viewer
    await pa.ok("call.hangup", call_id=call_id)
    assert await redis.ttl(keyspace.call(call_id)) > 3600  # reportable for a day, not a minute
    status, after = await api.call("POST", "/reports", ann, json={"session_id": call_id, "reason": "other"})
    assert status == 201 and after["user_id"] == ben.id, after  # an ended call is kept a while: still reportable
