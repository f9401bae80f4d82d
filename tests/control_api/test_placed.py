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
