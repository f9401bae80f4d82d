"""The declarative base every durable record (Postgres table) derives from, and the column shapes
the records share. ``control_api.models`` imports every module of records, so its ``Base.metadata``
holds every table (Alembic, the migration test). A process that imports only some record modules
(say ``control_api.ledger``) has only their tables: a foreign key to ``accounts`` then does not
resolve in the ORM; every entry point (the API's app, the commands) imports ``control_api.models``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


def uuid_fk(target: str, ondelete: str = "CASCADE", **kw: object) -> Mapped:  # type: ignore[type-arg]
    """A UUID column referencing ``target`` (``table.column``)."""
    return mapped_column(UUID(as_uuid=True), ForeignKey(target, ondelete=ondelete), **kw)  # type: ignore[arg-type]


def now_column() -> Mapped[datetime]:
    """A timestamp column the database sets to ``now()`` on insert."""
    return mapped_column(DateTime(timezone=True), server_default=func.now())
