"""Durable records of people's social life: public profiles, follows, likes, blocks, conversations
with their members, messages and attachments, uploaded media, in-app notifications."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from control_api.tables import Base, now_column, uuid_fk


class Profile(Base):
    """Public face of an account; exists once onboarding has started."""

    __tablename__ = "profiles"

    account_id: Mapped[uuid.UUID] = uuid_fk("accounts.id", primary_key=True)
    pseudo: Mapped[str | None] = mapped_column(String(32))
    birth_date: Mapped[date | None] = mapped_column(Date)
    bio: Mapped[str] = mapped_column(Text, default="")
    interests: Mapped[list[str]] = mapped_column(ARRAY(String(32)), default=list)
    country: Mapped[str | None] = mapped_column(String(2))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    photo: Mapped[str | None] = mapped_column(String(64))
    """Storage name of the profile photo."""
    total_likes: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = now_column()

    __table_args__ = (Index("profiles_pseudo_lower", text("lower(pseudo)"), unique=True),)


class Follow(Base):
    """``follower`` follows (``accepted``) or asked to follow (``pending``) ``followee``."""

    __tablename__ = "follows"

    follower_id: Mapped[uuid.UUID] = uuid_fk("accounts.id", primary_key=True)
    followee_id: Mapped[uuid.UUID] = uuid_fk("accounts.id", primary_key=True, index=True)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = now_column()
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Like(Base):
    """One like from ``liker`` to ``likee`` (a pair counts once in ``Profile.total_likes``)."""

    __tablename__ = "likes"

    liker_id: Mapped[uuid.UUID] = uuid_fk("accounts.id", primary_key=True)
    likee_id: Mapped[uuid.UUID] = uuid_fk("accounts.id", primary_key=True, index=True)
    created_at: Mapped[datetime] = now_column()


class Block(Base):
    """``blocker`` blocked ``blocked``: each is hidden from the other everywhere."""

    __tablename__ = "blocks"

    blocker_id: Mapped[uuid.UUID] = uuid_fk("accounts.id", primary_key=True)
    blocked_id: Mapped[uuid.UUID] = uuid_fk("accounts.id", primary_key=True, index=True)
    created_at: Mapped[datetime] = now_column()


class Conversation(Base):
    """A 1:1 (``direct``, at most one per pair via ``direct_key``) or ``group`` conversation."""

    __tablename__ = "conversations"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(100), default="")
    direct_key: Mapped[str | None] = mapped_column(String(80), unique=True)
    created_by: Mapped[uuid.UUID | None] = uuid_fk("accounts.id", ondelete="SET NULL")
    created_at: Mapped[datetime] = now_column()
    last_message_id: Mapped[int] = mapped_column(BigInteger, default=0)


class Member(Base):
    """A participant; ``last_read_id`` is their read receipt (the newest message id they read)."""

    __tablename__ = "conversation_members"

    conversation_id: Mapped[uuid.UUID] = uuid_fk("conversations.id", primary_key=True)
    account_id: Mapped[uuid.UUID] = uuid_fk("accounts.id", primary_key=True, index=True)
    joined_at: Mapped[datetime] = now_column()
    last_read_id: Mapped[int] = mapped_column(BigInteger, default=0)


class Message(Base):
    """A chat message; ids grow, so they double as the pagination cursor."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    conversation_id: Mapped[uuid.UUID] = uuid_fk("conversations.id")
    sender_id: Mapped[uuid.UUID | None] = uuid_fk("accounts.id", ondelete="SET NULL")
    text: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = now_column()

    __table_args__ = (Index("messages_conversation_id", "conversation_id", "id"),)


class Media(Base):
    """An uploaded file (chat attachment); stored under its id as name."""

    __tablename__ = "media"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = uuid_fk("accounts.id", index=True)
    content_type: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = now_column()


class Attachment(Base):
    """Media attached to a message; ``private`` ones are shown blurred, and those with a ``price`` are
    pay-per-view (control_api/ppv.py): served to a receiver once they paid."""

    __tablename__ = "message_attachments"

    message_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True)
    media_id: Mapped[uuid.UUID] = uuid_fk("media.id", primary_key=True)
    private: Mapped[bool] = mapped_column(Boolean, default=False)
    price: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """Credits a receiver pays to see it (None: not for sale); only on private attachments."""

    __table_args__ = (CheckConstraint("price IS NULL OR (price > 0 AND private)", name="attachment_price"),)


class Notification(Base):
    """An in-app notification: follow, like, message, invite, welcome, report_outcome."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    account_id: Mapped[uuid.UUID] = uuid_fk("accounts.id")
    kind: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict] = mapped_column(JSONB, default=dict)  # type: ignore[type-arg]
    created_at: Mapped[datetime] = now_column()
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("notifications_account_id", "account_id", "id"),)
