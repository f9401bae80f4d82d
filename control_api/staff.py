"""Who may moderate: the role is re-read from Postgres on every call, never taken from a token."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from control_api.errors import Forbidden
from control_api.models import Account, Role


async def require_staff(session: AsyncSession, account_id: uuid.UUID) -> Account:
    """The caller's account, re-read from Postgres, when it is a moderator or admin (else Forbidden)."""
    account = await session.get(Account, account_id)
    if account is None or account.deleted_at is not None or account.role not in (Role.MODERATOR, Role.ADMIN):
        raise Forbidden("moderators only")
    return account
