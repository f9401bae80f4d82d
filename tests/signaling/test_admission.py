"""A node at capacity refuses new sockets at once (``overloaded`` frame, close 1013) and keeps the ones
it has; it takes sockets again once the load is gone. Capacity is made a fact of the test: a
handshake held open (no token yet), a socket cap, or a loop the test declares late."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from signaling.admission import OVERLOADED, TRY_AGAIN_LATER
from signaling.node import NODE_GATEWAY
from tests.signaling.conftest import SETTINGS, Node, NodeFactory, Peer


async def _refused(peer: Peer) -> dict:  # type: ignore[type-arg]
    frame = await peer.expect("error")
    assert frame["code"] == OVERLOADED and frame["retry_after"] >= 1, frame
    assert await peer.closed() == TRY_AGAIN_LATER
    return frame


async def test_connects_beyond_the_handshake_limit_are_refused_then_taken_again(
        make_node: NodeFactory, token: Callable[..., str]) -> None:
    node: Node = await make_node(dataclasses.replace(SETTINGS, ws_max_handshakes=1))
    holding = await node.connect(None)  # upgraded, no token yet: a handshake under way
    await _refused(await node.connect(token("late"), hello=False))
    await holding.send({"type": "auth", "id": "a1", "token": token("holder")})
    await holding.expect("hello")
    again = await node.connect(token("again"))  # the handshake is done: room again
    assert (await again.ok("ping"))["type"] == "reply"
    assert (await holding.ok("ping"))["type"] == "reply"  # the sockets it holds keep working


async def test_a_node_at_its_socket_cap_refuses_more_and_keeps_the_rest(
        make_node: NodeFactory, token: Callable[..., str]) -> None:
    node: Node = await make_node(dataclasses.replace(SETTINGS, ws_max_sockets=2))
    a, b = await node.connect(token("a")), await node.connect(token("b"))
    await _refused(await node.connect(token("c"), hello=False))
    assert (await a.ok("ping"))["type"] == "reply"
    await b.ws.close()
    c = None
    for _ in range(50):  # the node notices b's close on its own schedule
        peer = await node.connect(token("c"), hello=False)
        first = await peer.recv()
        if first["type"] == "hello":
            c = peer
            break
        assert first["code"] == OVERLOADED
    assert c is not None and (await c.ok("ping"))["type"] == "reply"


class LateLoop:
    """Stands in for the loop-lag probe: the loop is as late as the test says."""

    late_s = 0.0

    def now(self) -> float:
        return self.late_s

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass


async def test_a_late_loop_refuses_new_sockets_in_either_codec(
        make_node: NodeFactory, token: Callable[..., str]) -> None:
    node: Node = await make_node(settings=dataclasses.replace(SETTINGS, lag_shed_ms=100))
    open_before = await node.connect(token("before"))
    late = LateLoop()
    node.app[NODE_GATEWAY]._admission.lag = late  # type: ignore[assignment]
    late.late_s = 1.0
    # A late loop with no connect in it is no connect backlog: taken.
    assert (await (await node.connect(token("alone"))).ok("ping"))["type"] == "reply"
    holding = await node.connect(None)  # a connect under way (no token yet)
    await _refused(await node.connect(token("json"), hello=False))
    await _refused(await node.connect(token("msgpack"), msgpack=True, hello=False))
    assert (await open_before.ok("ping"))["type"] == "reply"
    late.late_s = 0.0
    assert (await (await node.connect(token("after"))).ok("ping"))["type"] == "reply"
    await holding.send({"type": "auth", "id": "a1", "token": token("holder")})
    await holding.expect("hello")


async def test_connects_beyond_the_rate_are_refused(make_node: NodeFactory, token: Callable[..., str]) -> None:
    # One connect per 100 s: the bucket holds one; the next one is refused.
    node: Node = await make_node(dataclasses.replace(SETTINGS, ws_max_connects_per_s=0.01))
    first = await node.connect(token("a"))
    await _refused(await node.connect(token("b"), hello=False))
    assert (await first.ok("ping"))["type"] == "reply"
