"""A random-chat match outlives the node of one party, as a call does (docs/scaling.md, "Node loss").

Real ``switchboard node`` processes, a real ``switchboard matchmaker``, SDK clients whose sockets go
where the test's token source names (as the API's placement would): kim on A and lou on B are matched
(through the SFU, each node pulling the other's party) and decode each other. A is killed, or drained;
kim's client comes back on another node, its match sends ``call.rejoin`` with the match's session id,
and both decode each other again (a moderator's tap from C too); the matchmaker's pair keys still name
the match, and leaving it then ends it for lou as any leave does. A party that never comes back: see
test_call_loss.py (the match ends for the other with ``node_lost`` once ``node.call_rejoin_s`` passed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from switchboard.keyspace import match_pair
from switchboard.redis_client import text
from switchboard_client import RandomChat
from switchboard_client.media import TestPattern
from switchboard_client.tap import tap_call
from tests.conftest import REDIS_KINDS, redis_url_of
from tests.signaling.node_processes import node_starter  # noqa: F401 (the start_node fixture)
from tests.signaling.test_call_loss import Frames
from tests.signaling.test_cascade import matchmaker  # noqa: F401 (the fixture)
from tests.signaling.test_node_loss import BACK_S, _kill
from tests.signaling.test_nodes import switchboard
from tests.signaling.test_tap_follows import SECRET, TapFrames, _nodes, _open, _url


@pytest.fixture(params=REDIS_KINDS)
def redis_url(request: pytest.FixtureRequest) -> str:
    return redis_url_of(request)


@pytest.mark.parametrize(("how", "count", "tapped"), [("kill", 3, False), ("kill", 3, True), ("kill", 2, False),
                                                     ("drain", 2, False)])
async def test_a_match_goes_on_when_a_partys_node_is_lost_and_the_party_comes_back(
        start_node: Callable[..., Any], token: Callable[..., str], redis: Any, matchmaker: None,  # noqa: F811
        how: str, count: int, tapped: bool) -> None:
    """``kill`` with three nodes: kim comes back on C (B and C then pull each other); with two: on B,
    lou's node (one room). ``drain``: kim's client follows the ``reconnect`` to B. ``tapped``: mia, a
    moderator on C, taps the match before A dies; the tap decodes kim's new camera after the move."""
    a, b, *rest = await _nodes(start_node, redis, count, SWITCHBOARD_CASCADE_SECRET=SECRET,
                               SWITCHBOARD_NODE_DRAIN_GRACE_S="30" if how == "drain" else "0")
    back = rest[0] if rest else b
    clients: list[Any] = []
    frames: list[Frames] = []
    taps: list[TapFrames] = []
    try:
        kim, kim_placed = await _open(token("kim"), _url(a))
        lou, _ = await _open(token("lou"), _url(b))
        clients += [kim, lou]
        chats = [RandomChat(kim, {"country": "FR", "age": 30}), RandomChat(lou, {"country": "FR", "age": 30})]
        for chat in chats:
            await chat.open()
        clients += chats
        async with asyncio.timeout(BACK_S):
            matches = [await chat.match() for chat in chats]
        sid = matches[0].call_id
        assert matches[1].call_id == sid and {m.media for m in matches} == {"sfu"}
        for match in matches:
            await match.start([TestPattern()])
        frames = [Frames(m) for m in matches]
        async with asyncio.timeout(BACK_S):
            for each in frames:
                await each.more(5)  # each decodes the other's camera, across the two nodes
        tap: TapFrames | None = None
        if tapped:
            mod, _ = await _open(token("mia", moderate=True, hidden=True), _url(back))
            clients.append(mod)
            clients.append(opened := await tap_call(mod, sid))
            tap = TapFrames(opened)
            taps.append(tap)
            async with asyncio.timeout(BACK_S):
                before = await tap.until(lambda n: len(n) == 2 and min(n.values()) >= 5)

        if how == "kill":
            kim_placed.url = _url(back)  # where kim's client comes back
            _kill(a)
            await a.proc.wait()
        else:
            code, _, err = await switchboard(b, "node", "drain", a.node_id)
            assert code == 0, err
        async with asyncio.timeout(BACK_S * 2):
            await matches[0].rejoined.wait()
        assert kim.hello.node == back.node_id
        async with asyncio.timeout(BACK_S * 2):
            for each in frames:
                await each.more(10)  # the match goes on: each decodes the other again
        assert [m.ended for m in matches] == [None, None] and [m.rejoins for m in matches] == [1, 0]
        if tap is not None:  # kim came back on the tap's node: the tap decodes her new camera there
            async with asyncio.timeout(BACK_S * 2):
                await tap.until(lambda n: any(n[key] >= 10 for key in n if key not in before))
        pairs = await redis.mget([match_pair("kim"), match_pair("lou")])
        assert [text(p) for p in pairs] == [sid, sid]  # the matchmaker's pair is the same live pair

        ended = lou.events("match.ended")
        await chats[0].close()  # kim leaves the match from the node she came back on: lou hears it
        async with asyncio.timeout(BACK_S):
            assert (await ended.next()) == {"type": "match.ended", "session_id": sid, "reason": "leave"}
        assert await redis.exists(match_pair("kim"), match_pair("lou")) == 0
    finally:
        for each in [*frames, *taps]:
            await each.close()
        for client in reversed(clients):
            await client.close()
