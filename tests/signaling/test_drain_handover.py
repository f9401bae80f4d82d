"""A drained edge's viewers move make-before-break (docs/protocol.md, ``reconnect``; docs/sdk.md).

Two real ``switchboard node`` processes with the cascade on: the show's broadcaster on A (its origin),
a viewer and a moderator's hidden tap on B (an edge: B pulls the show from A), all SDK clients with
real aiortc peer connections. B is drained: each SDK client opens a session on A while its socket on
B stays open, joins the show there with a new peer connection, and switches to it once it delivered
its first frame; only then is the old peer connection closed, then the old socket, and B exits.
What is asserted is the order of what each client saw (frames of the old and the new peer
connection, the SDK's steps), never how long anything took.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import aiohttp
from aiortc.mediastreams import MediaStreamError

from switchboard_client import NodeClient, publish_show, tap_show, view_show
from switchboard_client.media import TestPattern
from switchboard_client.relay import RelayedTrack
from switchboard_client.show import Viewing
from tests.signaling.conftest import STEP_S, Peer
from tests.signaling.node_processes import node_starter  # noqa: F401 (the start_node fixture)
from tests.signaling.test_nodes import registered, switchboard

ROOM = "drain-handover"
SECRET = "a-shared-secret-of-the-test-nodes"
BOUND_S = STEP_S * 6
"""Upper bound for each wait (tests never assert on timing; this machine is shared)."""


def tokens(token: str) -> Callable[[], Any]:
    async def source() -> str:
        return token
    return source


class Watch:
    """One SDK client's view of the move, in the order it happened: ``("frame", generation)`` for each
    frame its relayed video track gave, and each step of the SDK's tracer (``(step, fields)``)."""

    def __init__(self, node: NodeClient) -> None:
        self.node = node
        self.log: list[tuple[str, Any]] = []
        node.tracer = lambda step, fields: self.log.append((step, fields))
        self.viewing: Viewing | None = None
        self._reader: asyncio.Task[None] | None = None

    async def read(self, viewing: Viewing) -> None:
        self.viewing = viewing
        track = await viewing.track("video")
        assert isinstance(track, RelayedTrack)
        old = viewing.peer.pc

        def closed() -> None:  # the first peer connection's close, in order with the frames
            if old.connectionState == "closed" and ("old_closed", {}) not in self.log:
                self.log.append(("old_closed", {}))
        old.on("connectionstatechange", closed)

        async def frames() -> None:
            with contextlib.suppress(MediaStreamError):
                while True:
                    await track.recv()
                    self.log.append(("frame", track.generation))

        self._reader = asyncio.create_task(frames())

    def frames(self, generation: int, since: int = 0) -> int:
        return sum(1 for e in self.log[since:] if e == ("frame", generation))

    async def until(self, generation: int, count: int, since: int = 0) -> None:
        async with asyncio.timeout(BOUND_S):
            while self.frames(generation, since) < count:  # noqa: ASYNC110 (polls the log)
                await asyncio.sleep(0.05)

    def index(self, step: str, start: int = 0, **fields: Any) -> int:
        """The first entry ``step`` at or after ``start`` whose fields include ``fields`` (a frame: its
        ``generation``)."""
        for i, (name, value) in enumerate(self.log[start:], start):
            if name != step:
                continue
            if value == fields.get("generation") if step == "frame" else all(
                    value.get(k) == v for k, v in fields.items()):
                return i
        raise AssertionError(f"no {step} {fields} after {start}: {self.log[start:start + 60]}")

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


async def test_a_drained_edges_viewer_and_tap_switch_peers_make_before_break(
        start_node: Callable[..., Any], token: Callable[..., str], redis: Any) -> None:
    origin, edge = await asyncio.gather(
        start_node(SWITCHBOARD_CASCADE_SECRET=SECRET),
        start_node(SWITCHBOARD_CASCADE_SECRET=SECRET, SWITCHBOARD_NODE_DRAIN_GRACE_S="60"))
    host = NodeClient(f"http://127.0.0.1:{origin.port}", tokens(token("caster", ROOM, publish=True)))
    viewer = NodeClient(f"http://127.0.0.1:{edge.port}", tokens(token("viewer", ROOM, subscribe=True)))
    moderator = NodeClient(f"http://127.0.0.1:{edge.port}",
                           tokens(token("mod", ROOM, subscribe=True, hidden=True, moderate=True)))
    watches = [Watch(viewer), Watch(moderator)]
    closables: list[Any] = []
    try:
        async with asyncio.timeout(BOUND_S):
            await host.open()
            show = await publish_show(host, ROOM, [TestPattern()])
            closables.append(show)
            await viewer.open()
            await moderator.open()
            origin.node_id, edge.node_id = host.hello.node, viewer.hello.node
            assert origin.node_id != edge.node_id and moderator.hello.node == edge.node_id
            viewing, tap = await view_show(viewer, ROOM), await tap_show(moderator, ROOM)
            closables += [viewing, tap]
            assert tap.hidden and not viewing.hidden
            for watch, member in zip(watches, (viewing, tap), strict=True):
                await watch.read(member)
                await watch.until(0, 10)  # decoding through the edge
            await registered(redis, {origin.node_id, edge.node_id})

        code, _, err = await switchboard(origin, "node", "drain", edge.node_id)
        assert code == 0, err
        for watch in watches:  # the new peer connection's frames keep coming
            await watch.until(1, 30)
        async with asyncio.timeout(BOUND_S):
            assert await edge.proc.wait() == 0  # every socket left the drained node: it exited
        await registered(redis, {origin.node_id})

        for watch, member in zip(watches, (viewing, tap), strict=True):
            node = watch.node
            hello = watch.index("hello", watch.index("frame", generation=0), node=origin.node_id, resumed=False)
            answered = watch.index("answered", hello)  # the new peer connection is negotiated on A
            first_new = watch.index("frame", hello, generation=1)
            # Make-before-break: the old peer connection was still open (its media flowing) when the new
            # session began, was negotiated and gave its first frame, and closed only after that; no old
            # frame after the switch. (How many old frames fall between the new one's answer and its
            # first frame depends on the box: a CI run saw none in that short window, so not counted.)
            old_closed = watch.index("old_closed", hello)
            assert first_new < old_closed and watch.frames(0, since=first_new) == 0, watch.log
            moving = watch.index("moving", node=edge.node_id)
            switched = watch.index("switched", hello)
            moved = watch.index("moved", hello, node=edge.node_id)
            assert moving < hello < answered < first_new < switched < moved, watch.log
            assert watch.log[moved][1]["late"] == 0  # closed because every member switched, not at the bound
            # The socket stayed up through the move: never lost, and requests went to A from its hello on.
            assert not any(step == "socket_lost" for step, _ in watch.log), watch.log
            assert node.hello.node == origin.node_id and node.moves == 1 and member.rejoins == 1
            assert member.ended is None and not member.peer.closed
            await watch.until(1, 10, since=len(watch.log))  # decoding on A after B exited
        assert (await viewing.roster())["viewers"] == 1  # the viewer counted once (the tap never)
    finally:
        for watch in watches:
            await watch.close()
        for closable in reversed(closables):
            await closable.close()
        for client in (moderator, viewer, host):
            await client.close()


async def roster_of(peer: Peer, room: str, want: list[str]) -> dict[str, Any]:
    """The first roster answer naming ``want`` (each once; the other node's members come through Redis)."""
    async with asyncio.timeout(BOUND_S):
        while True:
            roster = await peer.ok("show.roster", room=room)
            if sorted(roster["roster"]) == want:
                return roster
            await asyncio.sleep(0.1)


async def test_the_nodes_let_one_user_overlap_on_two_nodes_of_a_show(start_node: Callable[..., Any],
                                                                    token: Callable[..., str]) -> None:
    """The overlap of a make-before-break move, at the nodes (no media): one user, with one token, has a
    socket on the node it leaves and one on the node it moves to, a member of the same show on both.
    The socket caps count per node (one per user and per token here: a second socket on the same node
    is refused, the one on the other node is not); the show's roster and viewer count over its nodes
    name the user once; the join on the new node leaves the old membership alone."""
    room = "drain-overlap"
    caps = {"SWITCHBOARD_CASCADE_SECRET": SECRET, "SWITCHBOARD_NODE_WS_MAX_SOCKETS_PER_USER": "1",
            "SWITCHBOARD_NODE_WS_MAX_SOCKETS_PER_TOKEN": "1"}
    new_node, old_node = await asyncio.gather(start_node(**caps), start_node(**caps))
    async with aiohttp.ClientSession() as http:
        caster = await new_node.connect(http, token("caster", room, publish=True))
        await caster.ok("show.create")
        ticket = token("viewer", room, subscribe=True)
        old = await old_node.connect(http, ticket)
        await old.ok("show.join", room=room)  # an edge: the old node pulls the show
        new = await new_node.connect(http, ticket)  # the same token on the other node: not over the caps
        joined = await new.ok("show.join", room=room)
        assert joined["viewers"] == 1 and sorted(joined["roster"]) == ["caster", "viewer"]
        extra = await http.ws_connect(f"http://127.0.0.1:{new_node.port}/ws", params={"token": ticket})
        refused = Peer(extra, old.codec)
        assert (await refused.expect("error"))["code"] == "too_many_sockets"  # the caps hold on each node
        await extra.close()
        for peer in (old, new, caster):
            assert (await roster_of(peer, room, ["caster", "viewer"]))["viewers"] == 1
        assert (await old.ok("show.roster", room=room))["room"] == room  # still a member where it was
        await old.ws.close()  # the move is done: the old socket goes, the user stays in the show once
        await new.ok("show.chat", room=room, text="still here")
        assert (await caster.expect("show.chat"))["from"] == "viewer"
        assert (await roster_of(caster, room, ["caster", "viewer"]))["viewers"] == 1
