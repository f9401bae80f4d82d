"""Token answers name the node to connect to (docs/scaling.md): ``node`` in the reply of the token routes.

A room token goes to the room's node (its origin while the show is live, else the least loaded node,
which is then pinned to the room); a socket token (calls, random chat) to the least loaded node.
``node`` is the node's base URL (open ``<node>/ws``), or null when no node is registered (``switchboard
up``, the all-in-one: the node is this very host).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Awaitable, Callable

from control_api.http import Call, Reply
from switchboard.placement import Placement

Handler = Callable[[Call], Awaitable[Reply]]


def placed(handler: Handler) -> Handler:
    """Wraps a token route: a 200 answer gains ``node``."""

    @functools.wraps(handler)
    async def answer(call: Call) -> Reply:
        reply = await handler(call)
        if reply.status != 200 or not isinstance(reply.body, dict):
            return reply
        placement = Placement(call.services.hot_redis)
        room = (reply.body.get("grants") or {}).get("room")
        node = await (placement.for_room(room) if room else placement.for_session())
        return dataclasses.replace(reply, body={**reply.body, "node": node.url if node is not None else None})

    return answer
