"""Who may reach and see whom on this node: blocks (both ways) and friends (an accepted follow, either way).

The control API owns both facts (Postgres) and mirrors them into Redis: ``keyspace.blocks(user)``
and ``keyspace.friends(user)``. The node only reads them, at the doors that need them: an invite or
an accept reads one pair (one round trip); a presence query reads the caller's sets, then the other
side's for the few friends it names (two round trips). A relay inside a call reads nothing (but a like
or a follow request, rare and durable, reads the pair): a call is only ever set up between users
that are not blocked, and a block made later ends the call on every node (the ``block`` sanctions
message), which is what stops the relay.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import redis.asyncio as aioredis

from switchboard.ids import UserId
from switchboard.keyspace import blocks, friends

BLOCKED_AMONG_LUA = (Path(__file__).resolve().parent / "lua" / "blocked_among.lua").read_text()


class Relations:
    """Reads the block and friend sets of :mod:`switchboard.keyspace`. Holds no state of its own."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._among = redis.register_script(BLOCKED_AMONG_LUA)

    async def blocked(self, a: UserId, b: UserId) -> bool:
        """True when either of the two blocks the other (each set is read, whichever way it was written)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.sismember(blocks(a), b)
            pipe.sismember(blocks(b), a)
            one, other = await pipe.execute()
        return bool(one) or bool(other)

    async def blocked_among(self, me: UserId, users: Sequence[UserId]) -> set[UserId]:
        """The users among ``users`` with a block either way with ``me`` (one round trip): every
        pair read at each call, both ways, in one script call (blocked_among.lua: a show's join reads
        as many sets as it has members, and one command each cost the node's loop ~0.13 ms). Every
        key is in KEYS and shares the ``{mm}`` hash tag, so on a cluster the script runs on the one
        master of that slot."""
        others = [u for u in dict.fromkeys(users) if u != me]
        if not others:
            return set()
        hits = await self._among(keys=[blocks(me), *(blocks(u) for u in others)], args=[me, *others])
        return {others[int(i) - 1] for i in hits}

    async def visible(self, me: UserId, users: Sequence[str]) -> list[str]:
        """The users among ``users`` whose presence ``me`` may see: ``me`` itself, and friends (an
        accepted follow either way: what ``/space`` lists) with no block either way. Everyone else,
        a pending or declined request included, is hidden (shown offline)."""
        others = [u for u in users if u != me]
        seen: list[str] = [me] if len(others) < len(users) else []
        if not others:
            return seen
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.smismember(friends(me), others)
            pipe.smismember(blocks(me), others)
            is_friend, is_blocked = await pipe.execute()
        candidates = [u for u, f, b in zip(others, is_friend, is_blocked, strict=True) if f and not b]
        if not candidates:
            return seen
        async with self._redis.pipeline(transaction=False) as pipe:
            for u in candidates:  # their side too: a half-written mirror is no friendship
                pipe.sismember(friends(u), me)
                pipe.sismember(blocks(u), me)
            theirs = await pipe.execute()
        return seen + [u for i, u in enumerate(candidates) if theirs[2 * i] and not theirs[2 * i + 1]]
