"""Durable records of paid live features: creators' prices, rooms' ticket prices, tickets sold.
Credits themselves live in the ledger (a ticket names its spend; gifts and call minutes are ledger
operations only)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from control_api.tables import Base


class CreatorPrice(Base):
    """A creator's prices: the default ticket of their rooms and their 1:1 calls' price per minute."""

    __tablename__ = "creator_prices"

    account_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("accounts.id", ondelete="CASCADE"),
                                                  primary_key=True)
    ticket_price: Mapped[int] = mapped_column(Integer, default=0)
    """Credits per ticket for the creator's rooms that set none (0: free)."""
    call_price: Mapped[int] = mapped_column(Integer, default=0)
    """Credits per minute of a 1:1 call to the creator (0: free)."""
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=text("now()"))


class RoomPrice(Base):
    """A room's own ticket price (overrides the owner's default)."""

    __tablename__ = "room_prices"

    room: Mapped[str] = mapped_column(String(64), ForeignKey("rooms.name", ondelete="CASCADE"), primary_key=True)
    price: Mapped[int] = mapped_column(Integer)


class Ticket(Base):
    """A viewer's ticket to one show session; refunded when the show ended too soon."""

    __tablename__ = "show_tickets"

    show_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    viewer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("accounts.id", ondelete="CASCADE"),
                                                 primary_key=True)
    room: Mapped[str] = mapped_column(String(64), index=True)
    price: Mapped[int] = mapped_column(Integer)
    spend_id: Mapped[str | None] = mapped_column(String(120), nullable=True)
    """The ledger operation that paid it (None: a free ticket)."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=text("now()"))
    refunded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
