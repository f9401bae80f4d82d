"""Helpers for the moderation tests: make a moderator, read the audit log straight from Postgres."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from control_api.models import Account, AuditEntry, Role
from control_api.services import SERVICES, Services
from tests.control_api.conftest import Api, User


def services(api: Api) -> Services:
    return api.app._subapps[0][SERVICES]  # type: ignore[attr-defined, no-any-return]


async def make_staff(api: Api, user: User, role: Role = Role.MODERATOR) -> User:
    """Gives ``user`` a staff role in Postgres (their access token still says ``user``: the API must
    re-read the role)."""
    async with services(api).sessions() as session, session.begin():
        account = await session.get(Account, uuid.UUID(user.id))
        assert account is not None
        account.role = role
    return user


async def audit_rows(api: Api, **where: Any) -> list[AuditEntry]:
    async with services(api).sessions() as session:
        stmt = select(AuditEntry).order_by(AuditEntry.id)
        for key, value in where.items():
            stmt = stmt.where(getattr(AuditEntry, key) == value)
        return list(await session.scalars(stmt))
