"""Token answers name the node to connect to (docs/scaling.md): ``node`` in the reply of the token routes.

A room token goes to the room's node (its origin while the show is live, else the least loaded node,
which is then pinned to the room); a socket token (calls, random chat) to the least loaded node.
A client that lost its node names it in the request (``avoid``: the node id of its last ``hello``),
and is not sent back there while the registry still lists it, nor named among its alternates
(switchboard/placement.py). Each answer notes the user against its node and alternates (for as long
as the token lives): only such users' reports of a lost node are counted.
``node`` is the node's base URL (open ``<node>/ws``), or null when no node is registered (``switchboard
up``, the all-in-one: the node is this very host). A viewer's room token also lists ``alternates``
(base URLs, best first): where the client opens a socket with the token it holds if ``node`` is lost,
without asking again (the token is checked there as anywhere: signature, expiry, bans, revocations).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any

from control_api.http import Call, Reply
from switchboard import keyspace
from switchboard.registry import NodeEntry

Handler = Callable[[Call], Awaitable[Reply]]


def placed(handler: Handler) -> Handler:
    """Wraps a token route: a 200 answer gains ``node``."""

    @functools.wraps(handler)
    async def answer(call: Call) -> Reply:
        placement = call.services.placer
        # A room's placement is read while the handler works (its reads share the handler's Redis
        # round trips); the room is pinned, if it must be, only once the token is granted.
        name = call.params.get("room")
        look = asyncio.ensure_future(placement.look(name)) if name else None
        try:
            reply = await handler(call)
        except BaseException:
            if look is not None:
                look.cancel()
                look.add_done_callback(_retrieve)
            raise
        if reply.status != 200 or not isinstance(reply.body, dict):
            if look is not None:
                look.cancel()
                look.add_done_callback(_retrieve)
            return reply
        grants = reply.body.get("grants") or {}
        room, viewer = grants.get("room"), not grants.get("publish")
        avoid = str(call.body.get("avoid") or "")  # the node the client just lost
        me = str(call.me.user_id)
        body = dict(reply.body)
        others: list[NodeEntry] = []
        if room and room == name and look is not None:
            seen = await look
            node = await placement.for_room(room, viewer=viewer, seen=seen, avoid=avoid, reporter=me)
            others = (placement.alternates(seen.entries, node, me, avoid=avoid)
                      if viewer and not grants.get("hidden") else [])
            if others:
                body["alternates"] = [n.url for n in others]
        elif room:
            node = await placement.for_room(room, viewer=viewer, avoid=avoid, reporter=me)
        else:
            node = await placement.for_session(avoid=avoid, reporter=me)
        if node is not None:  # only a user sent to a node may report it lost (switchboard/placement.py)
            expires = body.get("expires_at")
            ttl = int(expires - time.time()) + 60 if isinstance(expires, int | float) else keyspace.NODE_PLACED_TTL_S
            await placement.record(me, [node, *others], ttl)
        return dataclasses.replace(reply, body={**body, "node": node.url if node is not None else None})

    return answer


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Marks a placement read nobody awaits any more as seen (a refused request's)."""
    if not task.cancelled():
        task.exception()
