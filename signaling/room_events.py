"""Room facts for the integrators' webhooks and show moderation acts for the audit log, written to the
events stream (the control API forwards the former and audits the latter).

The node never touches Postgres: it XADDs :class:`switchboard.events.RoomEvent` entries to
``keyspace.EVENTS_STREAM`` (the path tap_opened/tap_closed take), each with its own unique id, and
the control API's consumer turns them into webhook events. A visible member is also kept in the
show's viewers set (``keyspace.show_viewers``), which the control API reads to accept a report on
the show. Callers pass only visible members: a hidden session (a moderator's tap) is never a
participant here. Writing never raises (a lost fact is
logged and counted: media and signaling go on).
"""

from __future__ import annotations

import logging
import time
import uuid

import redis.asyncio as aioredis

from switchboard.events import MAX_LINE, EventType, ModerationEvent, RoomEvent, encode
from switchboard.keyspace import EVENTS_STREAM, SHOW_VIEWERS_TTL_S, show_viewers

log = logging.getLogger(__name__)


def sdp_kinds(sdp: str) -> list[tuple[str, str]]:
    """``(mid, kind)`` of each audio or video media section an SDP sends (not ``recvonly``/``inactive``)."""
    out: list[tuple[str, str]] = []
    kind: str | None = None
    mid, sends = "", True

    def flush() -> None:
        if kind in ("audio", "video") and sends:
            out.append((mid or str(len(out)), kind))

    for line in sdp.splitlines():
        if line.startswith("m="):
            flush()
            kind, mid, sends = line[2:].split(" ", 1)[0], "", True
        elif line.startswith("a=mid:"):
            mid = line[6:].strip()
        elif line.strip() in ("a=recvonly", "a=inactive"):
            sends = False
    flush()
    return out


class RoomEvents:
    """The node's writer of room facts; ``redis=None`` writes nothing (a node without Redis, unit tests)."""

    def __init__(self, redis: aioredis.Redis | None) -> None:
        self._redis = redis
        self._tracks: dict[tuple[str, str], set[tuple[str, str]]] = {}
        """(room, peer) -> (mid, kind) already announced: a renegotiated offer announces only new tracks."""
        self.lost = 0
        """Facts not written (Redis failures)."""

    async def emit(self, event_type: EventType, room: str, /, **fields: str) -> None:
        if self._redis is None:
            return
        try:
            event = RoomEvent(event_type, id=f"evt_{uuid.uuid4().hex}", room=room, at_ms=int(time.time() * 1000),
                              **fields)
            await self._redis.xadd(EVENTS_STREAM, encode(event))  # type: ignore[arg-type]
        except Exception:  # a bad field or a Redis outage must not break the show
            self.lost += 1
            log.exception("room event %s of %s not written", event_type, room)

    async def joined(self, room: str, user: str, peer: str) -> None:
        """A visible member joined: kept among the show's viewers (``keyspace.show_viewers``: who may
        report it), then the webhook fact."""
        if self._redis is not None:
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    pipe.sadd(show_viewers(room), user)
                    pipe.expire(show_viewers(room), SHOW_VIEWERS_TTL_S)
                    await pipe.execute()
            except Exception:  # the show goes on; this member's report on it will be refused
                self.lost += 1
                log.exception("viewer %s of %s not recorded", user, room)
        await self.emit(EventType.PARTICIPANT_JOINED, room, user=user, peer=peer)

    async def left(self, room: str, user: str, peer: str, reason: str = "left") -> None:
        self._tracks.pop((room, peer), None)
        await self.emit(EventType.PARTICIPANT_LEFT, room, user=user, peer=peer, reason=reason)

    async def finished(self, room: str, owner: str, members: list[tuple[str, str]], reason: str) -> None:
        """Every visible member (``(user, peer)``) left, then the room finished."""
        for user, peer in members:
            await self.left(room, user, peer, reason)
        await self.emit(EventType.ROOM_FINISHED, room, user=owner, reason=reason)

    async def published(self, room: str, user: str, peer: str, offer_sdp: str) -> None:
        """One ``track_published`` per media section the offer sends that this peer had not announced."""
        seen = self._tracks.setdefault((room, peer), set())
        for track in sdp_kinds(offer_sdp):
            if track not in seen:
                seen.add(track)
                await self.emit(EventType.TRACK_PUBLISHED, room, user=user, peer=peer, kind=track[1])

    async def moderated(self, room: str, actor: str, role: str, hidden: bool, action: str, user: str, *,
                        message_id: int | None = None, text: str = "", until: int | None = None) -> None:
        """A show chat moderation act this node took, for the audit log: ``actor`` is the real user,
        hidden or not; ``user`` the viewer muted or removed, or the author of the line."""
        if self._redis is None:
            return
        # The audit keeps the line as text Postgres can hold (no NUL, no lone surrogate).
        text = text[:MAX_LINE].encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")
        try:
            event = ModerationEvent(EventType.SHOW_MODERATED, moderator=actor, role=role, hidden=hidden, room=room,
                                    action=action, user=user, at_ms=int(time.time() * 1000), message_id=message_id,
                                    text=text, until=until)
            await self._redis.xadd(EVENTS_STREAM, encode(event))  # type: ignore[arg-type]
        except Exception:  # never breaks the show: the act is done, its record is lost (logged, counted)
            self.lost += 1
            log.exception("moderation act %s in %s not written", action, room)
