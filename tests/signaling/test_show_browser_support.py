"""What the browser pages need from shows: a viewer subscribing again gets a fresh SFU peer (a
reloaded page), and moderators list the node's shows (the moderation console)."""

from __future__ import annotations

from collections.abc import Callable

from sfu.types import PeerId
from tests.signaling.conftest import Node


async def test_subscribing_again_replaces_a_viewers_peer_but_never_a_publishers(
        node: Node, token: Callable[..., str]) -> None:
    host = await node.connect(token("host", "r1", publish=True, subscribe=True, verified=True))
    await host.ok("show.create")
    await host.ok("show.publish", room="r1", sdp="v=0 pub")
    viewer = await node.connect(token("viewer", "r1", subscribe=True))
    peer = PeerId((await viewer.ok("show.join", room="r1"))["peer_id"])
    await viewer.ok("show.subscribe", room="r1")
    await viewer.ok("show.subscribe", room="r1")
    calls = [c for c in node.media.calls if c[0] in ("subscribe", "close_peer") and c[2] == peer]
    assert [c[0] for c in calls] == ["close_peer", "subscribe", "close_peer", "subscribe"]
    assert (await viewer.ok("show.roster", room="r1"))["viewers"] == 1
    host_peer = PeerId((await host.ok("show.join", room="r1"))["peer_id"])
    await host.ok("show.subscribe", room="r1")
    assert ("close_peer", "r1", host_peer) not in node.media.calls


async def test_moderators_list_shows_others_may_not(node: Node, token: Callable[..., str]) -> None:
    host = await node.connect(token("host2", "r2", publish=True, verified=True))
    await host.ok("show.create")
    fan = await node.connect(token("fan", "r2", subscribe=True))
    await fan.ok("show.join", room="r2")
    assert (await fan.request("show.list"))["code"] == "forbidden"
    mod = await node.connect(token("mod", "console", subscribe=True, hidden=True, moderate=True))
    listed = (await mod.ok("show.list"))["shows"]
    assert listed == [{"room": "r2", "owner": "host2", "roster": ["host2", "fan"], "viewers": 1}]
