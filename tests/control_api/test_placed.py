"""The token routes name the node to connect to (docs/scaling.md), from the node registry."""

from __future__ import annotations

from typing import Any

from switchboard import keyspace
from switchboard.registry import NodeEntry, NodeRegistry
from tests.control_api.conftest import ON_CLUSTER_TOO, Api
from tests.control_api.test_rooms import new_room


@ON_CLUSTER_TOO
async def test_token_answers_name_the_least_loaded_node_and_keep_a_show_on_its_node(api: Api, redis: Any) -> None:
    user = await api.user()
    room = await new_room(api, user)
    # No node registered (the all-in-one `switchboard up`): the node is this very host.
    status, body = await api.call("POST", "/ws-token", user)
    assert status == 200 and body["node"] is None
    registry = NodeRegistry(redis)
    await registry.announce(NodeEntry(id="node_a", url="http://127.0.0.1:9001", media_address="", cpu=0.1), 30)
    await registry.announce(NodeEntry(id="node_b", url="http://127.0.0.1:9002", media_address="", cpu=0.6), 30)
    status, body = await api.call("POST", f"/rooms/{room}/token", user, json={"role": "broadcaster"})
    assert status == 200 and body["node"] == "http://127.0.0.1:9001" and body["token"]
    # node_a gets busy: a socket token goes to node_b, the show's viewers still to node_a (its origin).
    await registry.announce(NodeEntry(id="node_a", url="http://127.0.0.1:9001", media_address="", cpu=0.8), 30)
    assert (await api.call("POST", "/ws-token", user))[1]["node"] == "http://127.0.0.1:9002"
    viewer = await api.user()
    assert (await api.call("POST", f"/rooms/{room}/token", viewer, json={}))[1]["node"] == "http://127.0.0.1:9001"
    # A draining node takes no new show; errors carry no node.
    await registry.announce(NodeEntry(id="node_b", url="http://127.0.0.1:9002", media_address="", draining=True), 30)
    other = await new_room(api, user)
    assert (await api.call("POST", f"/rooms/{other}/token", user, json={}))[1]["node"] == "http://127.0.0.1:9001"
    status, body = await api.call("POST", "/rooms/nope-room/token", user, json={})
    assert status == 404 and "node" not in body
    # Its placement was read alongside the refused request, and nothing was pinned for it.
    assert await redis.get(keyspace.room_node("nope-room")) is None
    assert await redis.get(keyspace.room_node(other)) is not None


@ON_CLUSTER_TOO
async def test_a_full_origin_sends_viewer_tokens_to_another_node_and_keeps_its_broadcaster(api: Api,
                                                                                         redis: Any) -> None:
    """``cascade.viewers_per_node`` (the node's ``viewer_cap``): the show's further viewers go to another
    node, which pulls the show from the origin; the broadcaster's token still names the origin."""
    owner = await api.user()
    room = await new_room(api, owner)
    registry = NodeRegistry(redis)
    await registry.announce(NodeEntry(id="node_a", url="http://127.0.0.1:9001", media_address="", cpu=0.1,
                                      viewer_cap=2, viewers=2), 30)
    status, body = await api.call("POST", f"/rooms/{room}/token", owner, json={"role": "broadcaster"})
    assert status == 200 and body["node"] == "http://127.0.0.1:9001"  # the only node: the origin
    await registry.announce(NodeEntry(id="node_b", url="http://127.0.0.1:9002", media_address="", cpu=0.5,
                                      viewer_cap=2), 30)
    viewer = await api.user()
    assert (await api.call("POST", f"/rooms/{room}/token", viewer, json={}))[1]["node"] == "http://127.0.0.1:9002"
    status, body = await api.call("POST", f"/rooms/{room}/token", owner, json={"role": "broadcaster"})
    assert body["node"] == "http://127.0.0.1:9001"


def _entry(node_id: str, port: int, **load: Any) -> NodeEntry:
    return NodeEntry(id=node_id, url=f"http://127.0.0.1:{port}", media_address="", **load)


@ON_CLUSTER_TOO
async def test_a_viewers_token_names_alternates_spread_over_the_other_nodes(api: Api, redis: Any) -> None:
    """A viewer's room token lists ``alternates``: the live nodes other than its own, never a draining
    one, each viewer's in its own order (so the viewers of a node that dies split over the others);
    a broadcaster's token lists none."""
    owner = await api.user()
    room = await new_room(api, owner)
    registry = NodeRegistry(redis)
    for i, cpu in enumerate((0.1, 0.3, 0.4, 0.5)):
        await registry.announce(_entry(f"node_{'abcd'[i]}", 9001 + i, cpu=cpu, draining=i == 3), 30)
    status, body = await api.call("POST", f"/rooms/{room}/token", owner, json={"role": "broadcaster"})
    assert status == 200 and body["node"] == "http://127.0.0.1:9001" and "alternates" not in body
    firsts = set()
    for _ in range(8):
        status, body = await api.call("POST", f"/rooms/{room}/token", await api.user(), json={})
        assert status == 200 and body["node"] == "http://127.0.0.1:9001"
        assert sorted(body["alternates"]) == ["http://127.0.0.1:9002", "http://127.0.0.1:9003"]
        firsts.add(body["alternates"][0])
    assert len(firsts) == 2  # 8 viewers: the chance that all rank one node first is 1 in 128


@ON_CLUSTER_TOO
async def test_a_node_is_skipped_for_everyone_only_once_two_users_placed_there_reported_it_lost(
        api: Api, redis: Any) -> None:
    """``avoid`` takes a node out of the reporter's own placement (and alternates) at once; for every
    other client only once two distinct users the API placed there reported it against the same
    heartbeat (the same user twice is one report; accounts never sent there are not counted); a newer
    heartbeat of it puts it back, and reports against that heartbeat count anew."""
    owner = await api.user()
    room = await new_room(api, owner)
    registry = NodeRegistry(redis)
    # The origin is full: viewers go to the least loaded other node, "node_dead", else "node_e".
    await registry.announce(_entry("node_o", 9001, cpu=0.05, viewer_cap=1, viewers=1, updated_ms=1), 30)
    status, _ = await api.call("POST", f"/rooms/{room}/token", owner, json={"role": "broadcaster"})
    assert status == 200
    await registry.announce(_entry("node_dead", 9002, cpu=0.1, viewer_cap=100, updated_ms=1), 30)
    await registry.announce(_entry("node_e", 9003, cpu=0.5, viewer_cap=100, updated_ms=1), 30)
    first, second, third, bystander = (await api.user(), await api.user(), await api.user(), await api.user())
    throwaways = [await api.user(), await api.user()]

    async def answer(user: Any, avoid: str | None = None) -> dict[str, Any]:
        status, body = await api.call("POST", f"/rooms/{room}/token", user, json={"avoid": avoid} if avoid else {})
        assert status == 200, body
        return dict(body)

    async def placed(user: Any, avoid: str | None = None) -> str:
        return str((await answer(user, avoid))["node"])

    dead, live = "http://127.0.0.1:9002", "http://127.0.0.1:9003"
    for user in (first, second, third, bystander):
        assert await placed(user) == dead
    for user in throwaways:  # never placed on node_dead: their word is not counted
        reply = await answer(user, "node_dead")
        assert reply["node"] == live and dead not in reply.get("alternates", [])  # their own answer skips it
    assert await placed(bystander) == dead
    reply = await answer(first, "node_dead")
    assert reply["node"] == live and dead not in reply.get("alternates", [])  # nor as its alternate
    assert await placed(bystander) == dead  # one user's word is not enough for the others
    assert await placed(first, "node_dead") == live
    assert await placed(bystander) == dead  # the same user twice is still one reporter
    assert await placed(second, "node_dead") == live
    assert await placed(bystander) == live  # two users: skipped for everyone
    assert dead not in (await answer(bystander)).get("alternates", [])  # nor named as an alternate
    # It heartbeats again (alive), then dies: the first reports against the new heartbeat count at once.
    await registry.announce(_entry("node_dead", 9002, cpu=0.1, viewer_cap=100, updated_ms=2), 30)
    assert await placed(first, "node_dead") == live
    assert await placed(third, "node_dead") == live
    assert await placed(bystander) == live
    await registry.announce(_entry("node_dead", 9002, cpu=0.1, viewer_cap=100, updated_ms=3), 30)  # alive
    assert await placed(bystander) == dead


@ON_CLUSTER_TOO
async def test_alternates_skip_the_node_this_request_avoids_and_prefer_nodes_that_are_not_full(
        api: Api, redis: Any) -> None:
    """A viewer's alternates never name the node its request reports lost, and name a node below its
    viewer cap before a full one."""
    owner = await api.user()
    room = await new_room(api, owner)
    registry = NodeRegistry(redis)
    await registry.announce(_entry("node_a", 9001, cpu=0.1, updated_ms=1), 30)
    status, _ = await api.call("POST", f"/rooms/{room}/token", owner, json={"role": "broadcaster"})
    assert status == 200
    await registry.announce(_entry("node_b", 9002, cpu=0.2, viewer_cap=5, viewers=5, updated_ms=1), 30)
    await registry.announce(_entry("node_c", 9003, cpu=0.3, updated_ms=1), 30)
    await registry.announce(_entry("node_d", 9004, cpu=0.4, updated_ms=1), 30)
    for _ in range(6):
        status, body = await api.call("POST", f"/rooms/{room}/token", await api.user(), json={})
        assert status == 200 and body["node"] == "http://127.0.0.1:9001"
        assert sorted(body["alternates"]) == ["http://127.0.0.1:9003", "http://127.0.0.1:9004"]  # not the full one
        status, body = await api.call("POST", f"/rooms/{room}/token", await api.user(), json={"avoid": "node_c"})
        assert status == 200 and "http://127.0.0.1:9003" not in body["alternates"]


@ON_CLUSTER_TOO
async def test_alternates_spread_a_lost_nodes_viewers_over_full_nodes_too_when_the_others_lack_room(
        api: Api, redis: Any) -> None:
    """When the nodes below their cap have no room for the viewers a lost node would send (its cap),
    a full node is ranked like the others: the viewers' first alternates split over every other node
    (they overflow anyway) rather than all naming the one node just below its cap. With room enough
    there, the full node stays last."""
    owner = await api.user()
    room = await new_room(api, owner)
    registry = NodeRegistry(redis)
    await registry.announce(_entry("node_o", 9001, cpu=0.05, viewer_cap=20, viewers=20, updated_ms=1), 30)
    status, _ = await api.call("POST", f"/rooms/{room}/token", owner, json={"role": "broadcaster"})
    assert status == 200
    await registry.announce(_entry("node_a", 9002, cpu=0.1, viewer_cap=20, updated_ms=1), 30)
    await registry.announce(_entry("node_b", 9003, cpu=0.5, viewer_cap=20, viewers=15, updated_ms=1), 30)
    firsts = set()
    for _ in range(40):  # until both came first (random user ids: 40 all alike is a 2**-39 chance)
        status, body = await api.call("POST", f"/rooms/{room}/token", await api.user(), json={})
        assert status == 200 and body["node"] == "http://127.0.0.1:9002"
        assert sorted(body["alternates"]) == ["http://127.0.0.1:9001", "http://127.0.0.1:9003"]
        firsts.add(body["alternates"][0])
        if len(firsts) == 2:
            break
    assert firsts == {"http://127.0.0.1:9001", "http://127.0.0.1:9003"}
    # node_b has room for node_a's cap: the full origin comes last for everyone.
    await registry.announce(_entry("node_b", 9003, cpu=0.5, viewer_cap=40, viewers=15, updated_ms=2), 30)
    for _ in range(6):
        status, body = await api.call("POST", f"/rooms/{room}/token", await api.user(), json={})
        assert status == 200 and body["alternates"] == ["http://127.0.0.1:9003", "http://127.0.0.1:9001"]
