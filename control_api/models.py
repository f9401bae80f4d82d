"""Durable records (Postgres). Money, when it lands, is integer minor units; times are UTC."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from control_api.tables import Base, now_column, uuid_fk


class Role(enum.StrEnum):
    USER = "user"
    MODERATOR = "moderator"
    ADMIN = "admin"


class Account(Base):
    """A person who can log in. The email is unique case-insensitively."""

    __tablename__ = "accounts"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(320))
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(
        Enum(Role, name="account_role", values_callable=lambda e: [m.value for m in e]), default=Role.USER
    )
    email_verified: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    premium: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    """Premium tier (larger rate limits); set by payments later."""
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """Set when the account was deleted; its personal data is gone, the row keeps references valid."""

    __table_args__ = (Index("accounts_email_lower", text("lower(email)"), unique=True),)


class AuditEntry(Base):
    """Append-only record of privileged acts (hidden grants, taps, sanctions, lifts, report
    transitions): a trigger refuses UPDATE and DELETE (migration 0006)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    actor_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("accounts.id", ondelete="SET NULL")
    )
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(200), default="")
    detail: Mapped[dict] = mapped_column(JSONB, default=dict)
    event_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    """Set when the entry comes from the Redis events stream: makes replays idempotent."""

    __table_args__ = (Index("audit_log_action_id", "action", "id"), Index("audit_log_actor_id", "actor_id", "id"))


class RefreshToken(Base):
    """One refresh token; rotation spends it and issues the next one in the same family.
    Presenting a spent token revokes the whole family (it was stolen or replayed)."""

    __tablename__ = "refresh_tokens"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    account_id: Mapped[uuid.UUID] = uuid_fk("accounts.id", index=True)
    family: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = now_column()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class EmailCode(Base):
    """A one-time code mailed for email verification (``verify``) or password reset (``reset``)."""

    __tablename__ = "email_codes"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    account_id: Mapped[uuid.UUID] = uuid_fk("accounts.id", index=True)
    purpose: Mapped[str] = mapped_column(String(16))
    code_hash: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class OutboxMail(Base):
    """Mail to send, written in the transaction that needs it; a sender drains it."""

    __tablename__ = "mail_outbox"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    to_addr: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = now_column()
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Sanction(Base):
    """A moderation measure on an account: ``warning`` (a notice, nothing refused), ``mute`` (no chat,
    DMs or show chat) or ``ban`` (no login, refresh or socket). Lifted early by setting ``revoked_at``."""

    __tablename__ = "sanctions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    account_id: Mapped[uuid.UUID] = uuid_fk("accounts.id", index=True)
    kind: Mapped[str] = mapped_column(String(16))
    """``ban``, ``mute`` or ``warning``."""
    reason: Mapped[str] = mapped_column(Text, default="")
    starts_at: Mapped[datetime] = now_column()
    ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """None: until revoked."""
    created_by: Mapped[uuid.UUID | None] = uuid_fk("accounts.id", ondelete="SET NULL")
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When it was lifted (None: not lifted)."""
    revoked_by: Mapped[uuid.UUID | None] = uuid_fk("accounts.id", ondelete="SET NULL")
    """The moderator who lifted it."""
    revoke_reason: Mapped[str] = mapped_column(Text, default="", server_default=text("''"))
    """Why it was lifted."""
    report_id: Mapped[int | None] = mapped_column(BigInteger)
    """The report it was imposed for, if any."""


class Report(Base):
    """A user's report about another user, from a profile, a message or a live session (a call or
    match ``session_id``, or a show ``room``). Lifecycle: ``open`` -> ``in_review`` (claimed by one
    moderator) -> ``actioned`` or ``dismissed``. One report per reporter, target and context stays
    open at a time (``reports_one_open``)."""

    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    reporter_id: Mapped[uuid.UUID | None] = uuid_fk("accounts.id", ondelete="SET NULL")
    reported_id: Mapped[uuid.UUID] = uuid_fk("accounts.id", index=True)
    context: Mapped[str] = mapped_column(String(16), default="profile", server_default=text("'profile'"))
    """``profile``, ``message`` or ``live``."""
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    """The reported chat message (context ``message``)."""
    session_id: Mapped[str | None] = mapped_column(String(128))
    """The call or random-chat session (``match.found``'s ``session_id``) the report is about, if any."""
    room: Mapped[str | None] = mapped_column(String(64))
    """The show the report is about, if any."""
    reason: Mapped[str] = mapped_column(Text)
    """One of ``reports.REASONS``."""
    comment: Mapped[str] = mapped_column(Text, default="", server_default=text("''"))
    """The reporter's words (at most 1000 characters)."""
    status: Mapped[str] = mapped_column(String(16), default="open")
    """``open``, ``in_review``, ``actioned`` or ``dismissed``."""
    created_at: Mapped[datetime] = now_column()
    claimed_by: Mapped[uuid.UUID | None] = uuid_fk("accounts.id", ondelete="SET NULL")
    """The moderator reviewing it (``in_review`` and after)."""
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When it was actioned or dismissed."""
    resolution: Mapped[str] = mapped_column(Text, default="", server_default=text("''"))
    """The moderator's note on closing (staff only; the reporter sees only the outcome)."""
    sanction_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("sanctions.id", ondelete="SET NULL"))
    """The sanction an ``actioned`` report led to."""
    clip_id: Mapped[str | None] = mapped_column(String(64))
    """The evidence clip of the session (set by the clips feature through its own route), if any."""

    __table_args__ = (
        Index("reports_status_id", "status", "id"),
        Index("reports_one_open", "reporter_id", "reported_id", "context",
              text("coalesce(message_id::text, session_id, room, '')"), unique=True,
              postgresql_where=text("status IN ('open', 'in_review')")),
    )


class Activity(Base):
    """One user active on one day (UTC), with the kinds of events seen (a bit per kind, see
    ``control_api.stats.EVENT_BITS``): DAU/WAU/MAU count distinct users over 1, 7 or 30 days."""

    __tablename__ = "activity_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    kinds: Mapped[int] = mapped_column(Integer, default=0)
    """Bit set of the event kinds seen that day."""

    __table_args__ = (Index("activity_days_account", "account_id", "day"),)


class ActivityRollup(Base):
    """A finished day's active-user figures, computed once and kept (the console reads these)."""

    __tablename__ = "activity_rollups"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    dau: Mapped[int] = mapped_column(Integer)
    wau: Mapped[int] = mapped_column(Integer)
    """Distinct users over the 7 days ending on ``day``."""
    mau: Mapped[int] = mapped_column(Integer)
    """Distinct users over the 30 days ending on ``day``."""


class ActivityLast(Base):
    """Each user's latest active day (UTC): moved forward by the tracker on a user's first event of a
    day, with :class:`ActivityCount` (``control_api.stats``)."""

    __tablename__ = "activity_last"

    account_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    day: Mapped[date] = mapped_column(Date)


class ActivityCount(Base):
    """How many users have ``day`` as their latest active day, in shards (summed on read): the users
    active in a window ending today are exactly those whose latest day falls in it."""

    __tablename__ = "activity_counts"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    users: Mapped[int] = mapped_column(Integer)


class Room(Base):
    """A room someone owns: only its owner gets a broadcaster token for it. The name is chosen by the
    server (``show-`` + 128 random bits), so it can be neither guessed nor taken first."""

    __tablename__ = "rooms"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_id: Mapped[uuid.UUID] = uuid_fk("accounts.id", index=True)
    kind: Mapped[str] = mapped_column(String(16), default="show")
    """``show`` (one broadcaster, many viewers); the only kind so far."""
    title: Mapped[str] = mapped_column(String(100), default="")
    """The owner's words for it: metadata only, never part of the name."""
    created_at: Mapped[datetime] = now_column()



class ProcessedEvent(Base):
    """An events-stream entry already applied; inserted in the transaction that applies it."""

    __tablename__ = "processed_events"

    event_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    processed_at: Mapped[datetime] = now_column()


class Clip(Base):
    """An evidence clip: the last seconds of every track of an SFU room, remuxed by a node (never
    decoded) and stored through the API's Storage. Reports may link one (``clip_id``)."""

    __tablename__ = "clips"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    """Made by the node that saved it (32 hex digits)."""
    room: Mapped[str] = mapped_column(String(200), index=True)
    """The SFU room: a show's room name, or a call's / match's id."""
    moderator_id: Mapped[uuid.UUID | None] = uuid_fk("accounts.id", ondelete="SET NULL")
    """Who asked for it (None when that account is gone, or it was not a known account)."""
    content_type: Mapped[str] = mapped_column(String(32))
    """``video/webm`` (VP8 + Opus) or ``video/x-matroska`` (H.264 + Opus)."""
    size: Mapped[int] = mapped_column(BigInteger)
    duration_ms: Mapped[int] = mapped_column(BigInteger)
    tracks: Mapped[int] = mapped_column(Integer)
    storage_name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = now_column()


# The other records (social life; money's tables, declared next to their code) are imported here so
# Base.metadata (Alembic, the migration test) always holds every table.
from control_api import paid_models as _paid_models  # noqa: E402,F401
from control_api import social_models as _social_models  # noqa: E402,F401
from control_api.ledger import models as _ledger_models  # noqa: E402,F401
from control_api.payments import models as _payments_models  # noqa: E402,F401
from control_api.webhooks import models as _webhook_models  # noqa: E402,F401
