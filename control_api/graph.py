"""Queries shared by every feature that shows one user to another: blocks hide both ways."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_api.errors import NotFound
from control_api.models import Account
from control_api.social_models import Block, Profile


def not_blocked(me: uuid.UUID | ColumnElement[Any], other: Any) -> ColumnElement[bool]:
    """SQL condition: no block between ``me`` and the user in column ``other``, either way."""
    return ~exists().where(
        or_(
            and_(Block.blocker_id == me, Block.blocked_id == other),
            and_(Block.blocker_id == other, Block.blocked_id == me),
        )
    )


async def blocked_either(session: AsyncSession, a: uuid.UUID, b: uuid.UUID) -> bool:
    return not bool(await session.scalar(select(not_blocked(a, b))))


async def visible_account(session: AsyncSession, me: uuid.UUID, other: uuid.UUID) -> Account:
    """The other live account when ``me`` may see it; NotFound when missing, deleted or blocked."""
    account = await session.get(Account, other)
    if account is None or account.deleted_at is not None or (me != other and await blocked_either(session, me, other)):
        raise NotFound("no such user")
    return account


def age(birth: date, today: date) -> int:
    """Full years between ``birth`` and ``today``."""
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def public_profile(account_id: uuid.UUID, profile: Profile | None, today: date) -> dict[str, Any]:
    """What any user may see of another (no email, no birth date, no exact location)."""
    if profile is None:
        return {"id": str(account_id), "pseudo": None, "bio": "", "interests": [], "country": None,
                "age": None, "photo_url": None, "total_likes": 0}
    return {
        "id": str(account_id),
        "pseudo": profile.pseudo,
        "bio": profile.bio,
        "interests": list(profile.interests or []),
        "country": profile.country,
        "age": age(profile.birth_date, today) if profile.birth_date else None,
        "photo_url": f"/api/photos/{profile.photo}" if profile.photo else None,
        "total_likes": profile.total_likes,
    }
