"""A call party's publish leg dies (its page closes the connection): over /ws with the real SFU, the
party gets ``call.sfu_closed`` for that leg with the real reason; the room and the call go on."""

from __future__ import annotations

from collections.abc import Callable

from sfu.worker import Worker
from switchboard.ids import RoomId
from tests.signaling.conftest import NodeFactory
from tests.signaling.test_call_media import SFU_SETTINGS, accepted_call, producers, publish, real_sfu


async def test_a_dead_publish_leg_is_reported_with_its_reason(make_node: NodeFactory,
                                                             token: Callable[..., str]) -> None:
    workers: list[Worker] = []
    node = await make_node(SFU_SETTINGS, open_media=real_sfu(workers))
    pa, pb, call_id = await accepted_call(node, token, "ann", "ben")
    pc = await publish(pa, call_id)
    try:
        await producers(workers[0], call_id, 1)
        await pc.close()
        closed = await pa.expect("call.sfu_closed", call_id=call_id)
        assert (closed["leg"], closed["reason"]) == ("publish", "closed")
        assert RoomId(call_id) in workers[0].routers and not workers[0].routers[RoomId(call_id)].producers
        await pb.ok("ping")
        assert not [m for m in pb.seen if m["type"] == "call.sfu_closed"]
    finally:
        await pc.close()
