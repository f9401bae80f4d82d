"""A show over two in-process nodes (the SFU a fake at its Protocol boundary, pipes included): any
text a member chats on one node reaches the other node's members unchanged, and the roster agrees; an
edge whose pipe died pulls the show again, and ends it ("origin lost") once the origin is gone;
moderation (delete, pin, mute, kick) and gifts act on every node, line ids are the show's; a dead
node's members leave every roster when their entries expire."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfu.types import NodePipes
from signaling.node import Announce
from switchboard.ids import RoomId
from switchboard.registry import NodeRegistry
from switchboard.settings import CascadeSettings
from tests.signaling.conftest import SETTINGS, STEP_S, NodeFactory
from tests.signaling.fakes import FakeMedia, media_opener

ROOM = "spanned"
LOOSE = dataclasses.replace(SETTINGS, chat_rate_per_s=1e6, chat_burst=1_000_000, ws_rate_per_s=1e6,
                            ws_rate_burst=1_000_000)
_STATE: dict[str, Any] = {}


@dataclasses.dataclass
class FakePipes(FakeMedia):
    """The fake SFU with pipes between nodes (ports are made up: nothing is sent)."""

    pipes: dict[RoomId, list[str]] = dataclasses.field(default_factory=dict)
    ports: Any = dataclasses.field(default_factory=lambda: itertools.count(40000))

    async def open_node_pipe(self, room_id: RoomId, pipe_id: str, clip: bool = False) -> int:
        self.pipes.setdefault(room_id, []).append(pipe_id)
        return next(self.ports)

    async def connect_node_pipe(self, room_id: RoomId, pipe_id: str, host: str, port: int, export: bool,
                                descriptors: list[Any] | None = None) -> list[Any]:
        return []

    async def close_node_pipe(self, room_id: RoomId, pipe_id: str) -> None:
        if pipe_id in self.pipes.get(room_id, []):
            self.pipes[room_id].remove(pipe_id)

    async def node_pipes(self, room_id: RoomId) -> list[str]:
        return list(self.pipes.get(room_id, []))


async def _setup(make_node: NodeFactory, token: Callable[..., str]) -> None:
    nodes = []
    for _ in range(2):
        media = FakePipes()
        assert isinstance(media, NodePipes)
        nodes.append(await make_node(LOOSE, open_media=media_opener(media), cascade=CascadeSettings(secret="s" * 20),
                                     announce=Announce(url=lambda: "http://127.0.0.1:1", workers=1,
                                                       media_address="127.0.0.1")))
    caster = await nodes[0].connect(token("caster", ROOM, publish=True, verified=True))
    await caster.ok("show.create")
    fan = await nodes[1].connect(token("fan", ROOM, subscribe=True))
    joined = await fan.ok("show.join", room=ROOM)  # the second node pulls the show from the first
    assert joined["roster"] == ["fan", "caster"] and joined["viewers"] == 1
    assert (await caster.expect("show.roster", roster=["caster", "fan"]))["viewers"] == 1
    _STATE.update(caster=caster, fan=fan)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(min_size=1, max_size=200))
async def test_any_chat_text_crosses_nodes_unchanged(make_node: NodeFactory, token: Callable[..., str],
                                                     text: str) -> None:
    if "caster" not in _STATE:
        await _setup(make_node, token)
    caster, fan = _STATE["caster"], _STATE["fan"]
    line = await fan.ok("show.chat", room=ROOM, text=text)
    got = await caster.expect("show.chat", id=line["id"])
    assert (got["text"], got["from"]) == (text, "fan")
    line = await caster.ok("show.chat", room=ROOM, text=text)
    assert (await fan.expect("show.chat", id=line["id"]))["text"] == text
    caster.seen.clear()
    fan.seen.clear()


async def test_an_edge_pulls_again_when_its_pipe_dies_and_ends_when_the_origin_is_gone(
        make_node: NodeFactory, token: Callable[..., str], redis: Any) -> None:
    media = [FakePipes(), FakePipes()]
    nodes = [await make_node(SETTINGS, open_media=media_opener(m), cascade=CascadeSettings(secret="s" * 20),
                             announce=Announce(url=lambda: "http://127.0.0.1:1", workers=1,
                                               media_address="127.0.0.1")) for m in media]
    caster = await nodes[0].connect(token("caster", ROOM, publish=True, verified=True))
    await caster.ok("show.create")
    fan = await nodes[1].connect(token("fan", ROOM, subscribe=True))
    await fan.ok("show.join", room=ROOM)
    [first] = media[1].pipes[RoomId(ROOM)]
    assert len(media[0].pipes[RoomId(ROOM)]) == 1  # the origin's end
    media[1].pipes[RoomId(ROOM)].clear()  # the edge's pipe died (its SFU closed it: silence)
    async with asyncio.timeout(STEP_S):
        while not media[1].pipes[RoomId(ROOM)]:  # noqa: ASYNC110 (the edge's watch pulls again)
            await asyncio.sleep(0.05)
    assert media[1].pipes[RoomId(ROOM)] != [first]
    await nodes[0].client.close()  # the origin stops: its show's record goes
    assert await redis.get("show:origin:" + ROOM) is None
    media[1].pipes[RoomId(ROOM)].clear()
    assert (await fan.expect("show.ended", room=ROOM))["reason"] == "origin lost"


async def _two_nodes(make_node: NodeFactory, **kw: Any) -> list[Any]:
    return [await make_node(LOOSE, open_media=media_opener(FakePipes()), cascade=CascadeSettings(secret="s" * 20),
                            announce=Announce(url=lambda: "http://127.0.0.1:1", workers=1, media_address="127.0.0.1"),
                            **kw) for _ in range(2)]


async def test_moderation_and_gifts_act_on_every_node_of_a_show(make_node: NodeFactory, token: Callable[..., str],
                                                                 redis: Any) -> None:
    room = "moderated"
    a, b = await _two_nodes(make_node)
    caster = await a.connect(token("caster", room, publish=True, verified=True))
    await caster.ok("show.create")
    mod = await a.connect(token("mod", room, subscribe=True, hidden=True, moderate=True))
    await mod.ok("show.join", room=room)
    ann, ben = await b.connect(token("ann", room, subscribe=True)), await b.connect(token("ben", room, subscribe=True))
    await ann.ok("show.join", room=room)  # b pulls the show from a: an edge
    await ben.ok("show.join", room=room)
    await caster.expect("show.roster", viewers=2)
    # Line ids are the show's, not a node's: lines taken on a and on b never share one.
    ids = [(await peer.ok("show.chat", room=room, text=f"line {n}"))["id"]
           for n, peer in enumerate((caster, ann, caster, ben))]
    assert len(set(ids)) == 4
    for peer in (caster, ann, ben):
        await peer.expect("show.chat", id=ids[3])
    # A moderator on a deletes ann's line (taken on b): b's members see it go.
    await mod.ok("show.chat_delete", room=room, message_id=ids[1])
    for peer in (caster, ann, ben):
        assert (await peer.expect("show.chat_deleted", message_id=ids[1]))["by"] == "moderator"
    # The owner on a pins ben's line (taken on b): pinned on b too, and for a later joiner on b.
    await caster.ok("show.chat_pin", room=room, message_id=ids[3])
    for peer in (ann, ben):
        assert (await peer.expect("show.chat_pinned"))["message"]["text"] == "line 3"
    # A mute on a holds on b.
    await mod.ok("show.mute", room=room, user="ann", minutes=5)
    await ann.expect("show.muted", user="ann")
    assert (await ann.request("show.chat", room=room, text="let me talk"))["code"] == "muted"
    # A gift sold for the show reaches b's members (the API publishes it on the owner's channel).
    await redis.publish("user:caster", json.dumps({"type": "show.gift", "room": room, "id": "g-1", "from": "ann",
                                                   "amount": 5, "name": "rose"}))
    for peer in (caster, ann, ben):
        assert (await peer.expect("show.gift", id="g-1"))["amount"] == 5
    # A kick from a removes ben from b, and b refuses him until the cool-down ends.
    await caster.ok("show.kick", room=room, user="ben", minutes=3)
    assert (await ben.expect("show.ended", room=room))["reason"] == "removed"
    await ann.expect("show.kicked", user="ben")
    assert (await caster.expect("show.roster", viewers=1))["roster"] == ["caster", "ann"]
    refused = await ben.request("show.join", room=room)
    assert refused["code"] == "forbidden" and "removed" in refused["message"]
    # An edge that starts holding the show after the acts (b's copy ends with its last member) starts from them.
    await ann.ok("show.leave", room=room)
    late = await b.connect(token("cal", room, subscribe=True))
    assert (await late.ok("show.join", room=room))["pinned"]["text"] == "line 3"
    assert (await ben.request("show.join", room=room))["code"] == "forbidden"


async def test_a_dead_nodes_members_leave_the_roster_when_their_entries_expire(
        make_node: NodeFactory, token: Callable[..., str], redis: Any) -> None:
    room = "expiring"
    a, b = await _two_nodes(make_node)
    caster = await a.connect(token("caster", room, publish=True, verified=True))
    await caster.ok("show.create")
    ann = await b.connect(token("ann", room, subscribe=True))
    await ann.ok("show.join", room=room)
    await caster.expect("show.roster", roster=["caster", "ann"])
    # Each node's members of the show are one hash with a short TTL, which the node refreshes.
    for peer, user in ((caster, "caster"), (ann, "ann")):
        key = f"show:members:{room}:{peer.hello['node']}"
        assert await redis.hvals(key) == [user.encode()] and 0 < await redis.ttl(key) <= 3
    # A node killed while holding the show (here: one that wrote its entries as a node does, then died).
    await redis.sadd(f"show:nodes:{room}", "node_ghost")
    await redis.hset(f"show:members:{room}:node_ghost", "s1", "zed")
    await redis.expire(f"show:members:{room}:node_ghost", 2)
    for peer in (caster, ann):  # each node reads the others' members again on its own
        assert sorted((await peer.expect("show.roster", viewers=2))["roster"]) == ["ann", "caster", "zed"]
    for peer in (caster, ann):  # its entries expire: gone from every roster and count, nobody told
        assert sorted((await peer.expect("show.roster", viewers=1))["roster"]) == ["ann", "caster"]


async def test_an_edge_drops_its_pipe_when_its_origin_leaves_the_registry_and_pulls_again_when_back(
        make_node: NodeFactory, token: Callable[..., str], redis: Any) -> None:
    room = "following"
    media = [FakePipes(), FakePipes()]
    slow = dataclasses.replace(LOOSE, heartbeat_s=600.0, registry_ttl_s=1200.0)  # the origin writes its entry once
    nodes = [await make_node(settings, open_media=media_opener(m), cascade=CascadeSettings(secret="s" * 20),
                             announce=Announce(url=lambda: "http://127.0.0.1:1", workers=1, media_address="127.0.0.1"))
             for settings, m in ((slow, media[0]), (LOOSE, media[1]))]
    caster = await nodes[0].connect(token("caster", room, publish=True, verified=True))
    await caster.ok("show.create")
    fan = await nodes[1].connect(token("fan", room, subscribe=True))
    await fan.ok("show.join", room=room)
    [first] = media[1].pipes[RoomId(room)]
    registry = NodeRegistry(redis)
    entry = await registry.get(caster.hello["node"])
    assert entry is not None
    await registry.withdraw(entry.id)  # the origin is gone from the registry (its entry expired: killed)
    async with asyncio.timeout(STEP_S):
        while media[1].pipes[RoomId(room)]:  # noqa: ASYNC110 (the edge's watch drops the pipe, silent or not)
            await asyncio.sleep(0.05)
    await registry.announce(entry, 60)  # the origin (the record's node) is live again
    async with asyncio.timeout(STEP_S):
        while not media[1].pipes[RoomId(room)]:  # noqa: ASYNC110 (the edge pulls the show again)
            await asyncio.sleep(0.05)
    assert media[1].pipes[RoomId(room)] != [first]
    assert "show.ended" not in [m["type"] for m in fan.seen]
