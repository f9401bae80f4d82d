"""A moderator's tap follows a party whose node was lost (killed) or drained.

Three real ``switchboard node`` processes on one Redis (and on a 3-master Redis Cluster), SDK clients:
amy on A and bob on B are in a call through the SFU (each node pulls the other's party by a sealed
pipe), and mia, a moderator on C, taps it (C pulls both parties into a hidden room of its own). Then B
is killed, and bob's client comes back where the test's placement names (C: the tapping node itself,
A: amy's node, or a fourth node D, which the tap finds in the call's node set), or B is drained and bob
follows its ``reconnect``. bob's call goes on with
``call.rejoin``; the tap keeps amy's camera and decodes bob's again, and nothing a party receives
names the tap. Closing the tap afterwards leaves the call's media alone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from switchboard_client import NodeClient
from switchboard_client.api import NodeToken
from switchboard_client.events import EventStream
from switchboard_client.media import FrameCounter, TestPattern
from switchboard_client.tap import CallTap, tap_call
from tests.conftest import REDIS_KINDS, redis_url_of
from tests.signaling.conftest import befriend
from tests.signaling.node_processes import NodeProcess, node_starter  # noqa: F401 (the start_node fixture)
from tests.signaling.test_call_loss import Frames, _call
from tests.signaling.test_drain import registered_count
from tests.signaling.test_node_loss import BACK_S, _kill
from tests.signaling.test_nodes import switchboard

SECRET = "a-shared-secret-of-the-test-nodes"


@pytest.fixture(params=REDIS_KINDS)
def redis_url(request: pytest.FixtureRequest) -> str:
    return redis_url_of(request)


class Placed:
    """A token source naming the node the test picks for the next socket (the API's placement would)."""

    def __init__(self, token: str, url: str) -> None:
        self.token = token
        self.url = url

    async def __call__(self) -> NodeToken:
        return NodeToken(self.token, int(time.time()) + 3600, {}, self.url)


async def _open(token: str, url: str) -> tuple[NodeClient, Placed]:
    placed = Placed(token, url)
    client = NodeClient(url, placed)
    await client.open()
    return client, placed


class TapFrames:
    """Frames decoded on each video track the tap got (a party that moved brings a new track)."""

    def __init__(self, tap: CallTap) -> None:
        self.tap = tap
        self.counters: dict[int, FrameCounter] = {}

    def per_track(self) -> dict[int, int]:
        for track in self.tap.tracks:
            if track.kind == "video" and id(track) not in self.counters:
                self.counters[id(track)] = FrameCounter(track)
        return {key: c.count.frames for key, c in self.counters.items()}

    async def until(self, ok: Callable[[dict[int, int]], bool]) -> dict[int, int]:
        """Polls the counts until ``ok`` holds (bound it with ``asyncio.timeout``)."""
        while not ok(counts := self.per_track()):  # noqa: ASYNC110 (polls the frame counters)
            await asyncio.sleep(0.2)
        return counts

    async def close(self) -> None:
        for counter in self.counters.values():
            await counter.close()


async def _nodes(start_node: Callable[..., Any], redis: Any, count: int, **settings: str) -> list[NodeProcess]:
    nodes = list(await asyncio.gather(*(start_node(**settings) for _ in range(count))))
    by_url = {_url(n): n for n in nodes}
    for entry in await registered_count(redis, count):
        by_url[entry.url].node_id = entry.id
    return nodes


def _url(node: NodeProcess) -> str:
    return f"http://127.0.0.1:{node.port}"


async def _everything(stream: EventStream) -> list[dict[str, Any]]:
    stream.close()
    return [event async for event in stream]


@pytest.mark.parametrize(("how", "back_on"), [("kill", "tap"), ("kill", "peer"), ("kill", "fourth"), ("drain", "")])
async def test_a_tap_follows_a_party_whose_node_is_lost(start_node: Callable[..., Any], token: Callable[..., str],
                                                        redis: Any, how: str, back_on: str) -> None:
    await befriend(redis, "amy", "bob")
    a, b, c, *more = await _nodes(start_node, redis, 4 if back_on == "fourth" else 3,
                                  SWITCHBOARD_CASCADE_SECRET=SECRET, SWITCHBOARD_NODE_CALL_MEDIA="sfu",
                                  SWITCHBOARD_NODE_DRAIN_GRACE_S="30" if how == "drain" else "0")
    back = {"tap": c, "peer": a, "fourth": more[0] if more else a}.get(back_on, a)
    clients: list[Any] = []
    frames: list[Frames] = []
    tapped: TapFrames | None = None
    try:
        amy, _ = await _open(token("amy"), _url(a))
        bob, bob_placed = await _open(token("bob"), _url(b))
        clients += [amy, bob]
        heard = [amy.events(), bob.events()]  # everything each party's socket gets, to the end
        calls = await _call(amy, bob)
        clients += calls
        assert {x.media for x in calls} == {"sfu"}
        for party in calls:
            await party.start([TestPattern()])
        frames = [Frames(x) for x in calls]
        async with asyncio.timeout(BACK_S):
            for each in frames:
                await each.more(5)  # each decodes the other's camera, pulled from the other node

        mod, _ = await _open(token("mia", moderate=True, hidden=True), _url(c))
        clients.append(mod)
        tap = await tap_call(mod, calls[0].call_id)
        clients.append(tap)
        tapped = TapFrames(tap)
        async with asyncio.timeout(BACK_S):  # C pulls both parties: two cameras decode on the tap
            before = await tapped.until(lambda n: len(n) == 2 and min(n.values()) >= 5)

        if how == "kill":
            bob_placed.url = _url(back)  # where bob's client comes back
            _kill(b)
            await b.proc.wait()
        else:
            code, _, err = await switchboard(a, "node", "drain", b.node_id)
            assert code == 0, err
        async with asyncio.timeout(BACK_S * 2):
            await calls[1].rejoined.wait()
        assert bob.hello.node != b.node_id
        if how == "kill":
            assert bob.hello.node == back.node_id
        async with asyncio.timeout(BACK_S * 2):
            for each in frames:
                await each.more(10)  # the call goes on: each decodes the other again

        # The tap kept amy's camera and decodes bob's again: on a track it did not have before the move
        # (a renegotiation), or on the same one (bob's new producer took over in place: sfu/orphans.py).
        async with asyncio.timeout(BACK_S * 2):
            after = await tapped.until(lambda n: any(n.get(key, 0) >= 10 for key in n if key not in before)
                                       or all(n[key] >= before[key] + 10 for key in before))
        assert any(after[key] > before[key] + 10 for key in before), (before, after)  # amy's, all along

        await tap.close()  # the moderator leaves: the call's media go on (the tap's room was not theirs)
        async with asyncio.timeout(BACK_S):
            for each in frames:
                await each.more(10)
        assert all(x.ended is None for x in calls)

        ended = amy.events("call.ended")
        await calls[1].close()  # bob hangs up from his new node: amy hears it
        async with asyncio.timeout(BACK_S):
            assert (await ended.next())["reason"] == "hangup"
        for events in heard:  # nothing either party got names the moderator or a tap
            for event in await _everything(events):
                assert "mia" not in str(event) and event.get("leg") != "tap", event
    finally:
        for each in frames:
            await each.close()
        if tapped is not None:
            await tapped.close()
        for client in reversed(clients):
            await client.close()
