"""Who took part in a live session, read from the realtime planes' Redis records (never from a node).

A report on a live session must name one that exists and come from one of its parties, about
another (:func:`check`):

- a random-chat match's ``session_id``: the matchmaker's session hash (``keyspace.match_session``:
  ``a``, ``b``), kept ``matchmaker.session_ttl_s`` (24 h by default) after the pair was made;
- a 1:1 call's ``call_id`` (given as ``session_id``): the node's call hash (``keyspace.call``:
  ``caller``, ``callee``), kept while the call lives and ``signaling.calls.ENDED_KEEP_S`` (24 h) after;
- a show's ``room``: a room of the API's own (``rooms``, with its owner); its visible members are the
  set the nodes keep (``keyspace.show_viewers``, 24 h after the last join; never a hidden tap).

Unknown session or room: :class:`NotFound`; a reporter who was not in it: :class:`Forbidden`; a
reported user who was not in it: :class:`ValidationFailed`. Without ``user_id`` the target is the
other party of a session, or the show's owner.
"""

from __future__ import annotations

import uuid

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from control_api.errors import Forbidden, NotFound, ValidationFailed
from control_api.models import Room
from switchboard.keyspace import call, match_session, show_viewers
from switchboard.redis_client import text


async def _session_parties(redis: Redis, session_id: str) -> set[str] | None:
    """The two users of a match or a call with this id, or None when neither exists."""
    for key, fields in ((match_session(session_id), ("a", "b")), (call(session_id), ("caller", "callee"))):
        got = await redis.hmget(key, list(fields))
        if all(v is not None for v in got):
            return {text(v) for v in got}
    return None


async def check(redis: Redis, session: AsyncSession, reporter: uuid.UUID, target: uuid.UUID | None,
                session_id: str | None, room: str | None) -> uuid.UUID:
    """The reported user of a live report (``session_id`` or ``room``), once the session or room is
    known to exist and both the reporter and the target were in it; raises otherwise."""
    if session_id is not None:
        parties = await _session_parties(redis, session_id)
        if parties is None:
            raise NotFound(f"no call or random-chat session {session_id!r} (or it ended too long ago to report)")
        where = "this session"
    else:
        assert room is not None
        show = await session.get(Room, room)
        if show is None:
            raise NotFound(f"no room {room!r}")
        parties = {text(u) for u in await redis.smembers(show_viewers(room))} | {str(show.owner_id)}
        where = "this show"
        if target is None:
            target = show.owner_id
    if str(reporter) not in parties:
        raise Forbidden(f"you were not in {where}: only its parties may report it")
    if target is None:
        others = parties - {str(reporter)}
        if len(others) != 1:  # pragma: no cover - a session has two parties
            raise ValidationFailed({"user_id": "name the user reported"})
        try:
            target = uuid.UUID(others.pop())
        except ValueError:
            raise ValidationFailed({"user_id": "name the user reported"}) from None
    if str(target) not in parties or target == reporter:
        raise ValidationFailed({"user_id": f"was not another party of {where}"})
    return target
