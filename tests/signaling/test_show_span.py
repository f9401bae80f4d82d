"""A show over two in-process nodes (the SFU a fake at its Protocol boundary, pipes included): any
text a member chats on one node reaches the other node's members unchanged, and the roster agrees; an
edge whose pipe died pulls the show again, and ends it ("origin lost") once the origin is gone."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfu.types import NodePipes
from signaling.node import Announce
from switchboard.ids import RoomId
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

    async def open_node_pipe(self, room_id: RoomId, pipe_id: str) -> int:
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
