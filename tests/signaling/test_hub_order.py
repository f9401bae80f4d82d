"""One user's messages reach the user's sockets in the order the node got them, even while an observer
of an earlier one awaits Redis: a stranger's ``call.offer`` relayed right after a match never overtakes
the ``match.found`` it answers (a page would drop the offer of a session it does not know yet, and the
match would hang at "connecting": seen in tests/e2e/test_browser_random.py on a loaded box)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from signaling.hub import Hub
from switchboard.ids import NodeId, UserId, new_id


class Socket(SimpleNamespace):
    def send(self, message: dict[str, Any]) -> None:
        self.got.append(message["type"])

    async def close(self) -> None:
        self.closed = True


async def test_a_relayed_line_waits_for_the_observed_message_before_it(redis: Any) -> None:
    hub = Hub(redis, NodeId(new_id("node_")), 30)
    await hub.start()
    try:
        user = UserId(new_id("usr_"))
        socket = Socket(user_id=user, grants=SimpleNamespace(iat=0, hidden=False), got=[])
        assert await hub.add(socket) is None  # type: ignore[arg-type]
        release = asyncio.Event()

        async def observer(_user: UserId, _message: dict[str, Any]) -> None:
            await release.wait()  # the node's match bookkeeping in Redis, slowed down

        hub.observe(observer, frozenset({"match.found"}))
        found = asyncio.create_task(hub.deliver(user, {"type": "match.found", "session_id": "s1"}))
        await asyncio.sleep(0.05)
        offer = asyncio.create_task(hub.deliver(user, {"type": "call.offer", "call_id": "s1"}))
        ice = asyncio.create_task(hub.deliver(user, {"type": "call.ice", "call_id": "s1"}))
        await asyncio.sleep(0.05)
        assert socket.got == []  # neither line went ahead of the match
        release.set()
        await asyncio.wait_for(asyncio.gather(found, offer, ice), 10)
        assert socket.got == ["match.found", "call.offer", "call.ice"]
        await hub.deliver(user, {"type": "call.chat", "call_id": "s1"})  # nothing pending: straight through
        assert socket.got[-1] == "call.chat"
    finally:
        await hub.close()
