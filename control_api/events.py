"""The consumer of the nodes' events stream (likes and follow requests made in calls, tap and show
moderation audits).

Delivery is at least once: entries are read in the ``control_api`` consumer group and acknowledged
only after their transaction commits; entries left pending by a consumer that died are claimed
after ``claim_idle_ms``. Handlers are idempotent: each inserts the entry id into
``processed_events`` (or ``audit_log.event_id``) in the same transaction as its effect, so a replay
changes nothing. Entry format: :mod:`switchboard.events` (the schema the nodes write with); see
docs/api.md.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from control_api import notifications, stats
from control_api.graph import not_blocked
from control_api.models import Account, AuditEntry, ProcessedEvent
from control_api.services import Services
from control_api.social import add_like, request_follow
from control_api.social_models import Notification
from control_api.stream_group import StreamGroup
from control_api.webhooks import outbox as webhooks
from switchboard.events import EventType, ModerationEvent, OtherEvent, RoomEvent, SocialEvent, TapEvent, decode
from switchboard.keyspace import EVENTS_GROUP_API, EVENTS_STREAM
from switchboard.redis_client import text

log = logging.getLogger("switchboard.api.events")


class EventsConsumer(StreamGroup):
    def __init__(self, services: Services, *, name: str | None = None, claim_idle_ms: int = 60_000) -> None:
        super().__init__(services.redis, EVENTS_STREAM, EVENTS_GROUP_API, name=name, claim_idle_ms=claim_idle_ms,
                         block_ms=2000)
        self._services = services

    async def handle_all(self, entries: list[Any]) -> int:
        done = 0
        for entry_id, fields in entries:
            if fields is None:  # trimmed from the stream while pending
                await self.ack(entry_id)
                continue
            await self.handle(text(entry_id), fields)
            await self.ack(entry_id)
            done += 1
        return done

    async def handle(self, event_id: str, fields: dict[Any, Any]) -> bool:
        """Applies one entry once; False when it was already applied or is unusable."""
        try:
            event = decode(fields)
        except (ValueError, UnicodeDecodeError):
            log.warning("dropping malformed event %s", event_id)
            return False
        if isinstance(event, OtherEvent):
            if event.type == "match.paired":
                return await self._match(event_id, fields)
            log.info("ignoring event type %s", event.type)
            return False
        notes: list[Notification] = []
        async with self._services.sessions() as session, session.begin():
            if isinstance(event, RoomEvent):  # for the webhooks, once per the node's event id
                data = {k: v for k, v in event.data().items() if k != "id" and v != ""}
                applied = await webhooks.record(session, str(event.type), data, event_id=event.id) is not None
            elif isinstance(event, TapEvent):
                applied = await self._tap(session, event_id, event)
            elif isinstance(event, ModerationEvent):
                applied = await self._moderated(session, event_id, event)
            else:
                first = await session.scalar(
                    insert(ProcessedEvent).values(event_id=event_id, kind=str(event.type))
                    .on_conflict_do_nothing().returning(ProcessedEvent.event_id)
                )
                applied = first is not None and await self._social(session, event, notes)
        await notifications.push(self._services.realtime, notes)
        return applied

    async def _match(self, event_id: str, fields: dict[Any, Any]) -> bool:
        """A random-chat pair (the matchmaker's ``match.paired``: ``a``, ``b``): both were active."""
        users = []
        for key in ("a", "b"):
            try:
                users.append(uuid.UUID(text(fields.get(key) or fields.get(key.encode()) or "")))
            except ValueError:
                continue
        async with self._services.sessions() as session, session.begin():
            first = await session.scalar(
                insert(ProcessedEvent).values(event_id=event_id, kind="match.paired")
                .on_conflict_do_nothing().returning(ProcessedEvent.event_id))
            if first is None:
                return False
            await stats.track_all(session, users, "match")
            await webhooks.record(session, "match_made", {"session_id": text(fields.get("session_id") or fields.get(
                b"session_id") or ""), "users": [str(u) for u in users]}, event_id=f"evt_match_{event_id}")
        return True

    async def _pair(self, session: AsyncSession, event: SocialEvent) -> tuple[uuid.UUID, uuid.UUID] | None:
        try:
            a, b = uuid.UUID(event.from_user), uuid.UUID(event.to_user)
        except ValueError:
            return None
        if a == b:
            return None
        live = list(await session.scalars(
            select(Account.id).where(Account.id.in_([a, b]), Account.deleted_at.is_(None))
        ))
        if len(live) != 2:
            return None
        if not await session.scalar(select(not_blocked(a, b))):
            return None
        return a, b

    async def _social(self, session: AsyncSession, event: SocialEvent, notes: list[Notification]) -> bool:
        pair = await self._pair(session, event)
        if pair is None:
            return False
        if event.type is EventType.LIKE:
            _, made = await add_like(session, *pair)
        elif event.type is EventType.CALL_MISSED:
            caller, callee = pair
            data = {"user_id": str(caller), "call_id": event.call_id}
            made = [notifications.add(session, callee, "call_missed", data)]
        else:
            _, made = await request_follow(session, *pair)
        notes.extend(made)
        return True

    async def _tap(self, session: AsyncSession, event_id: str, event: TapEvent) -> bool:
        """One audit row per tap fact: ``tap.opened``/``tap.closed``, actor = the moderator, subject =
        the room, detail = the whole event (publishers seen, times; ``moderator`` kept as written
        should the account be gone)."""
        action = "tap.opened" if event.type is EventType.TAP_OPENED else "tap.closed"
        return await self._audit(session, event_id, event.moderator, action, event.room, event.data())

    async def _moderated(self, session: AsyncSession, event_id: str, event: ModerationEvent) -> bool:
        """One audit row per show chat moderation act: ``show.<action>``, actor = the real owner or
        moderator (members saw only "moderator"), subject = the user it concerns, detail = the whole
        event (room, role, hidden, the line quoted, until)."""
        return await self._audit(session, event_id, event.moderator, f"show.{event.action}", event.user,
                                 event.data())

    @staticmethod
    async def _audit(session: AsyncSession, event_id: str, moderator: str, action: str, subject: str,
                     detail: dict[str, Any]) -> bool:
        """The audit row of a node's event, once per stream entry (``event_id`` is unique)."""
        try:
            actor: uuid.UUID | None = uuid.UUID(moderator)
        except ValueError:
            actor = None
        if actor is not None and await session.get(Account, actor) is None:
            actor = None
        row = await session.scalar(
            insert(AuditEntry).values(
                actor_id=actor, action=action, subject=subject, detail=detail, event_id=event_id,
            ).on_conflict_do_nothing(index_elements=["event_id"]).returning(AuditEntry.id)
        )
        return row is not None

