"""Accounts: password hashing and the administrator made on first start."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from control_api.models import Account, AuditEntry, Role


@dataclass(frozen=True)
class AdminLogin:
    """The administrator's credentials, returned once, when the account is created."""

    email: str
    password: str


async def ensure_admin(sessions: async_sessionmaker, email: str, hasher: PasswordHasher) -> AdminLogin | None:
    """Creates the first administrator when no admin exists; returns its login only then."""
    async with sessions() as session, session.begin():
        exists = await session.scalar(select(func.count()).select_from(Account).where(Account.role == Role.ADMIN))
        if exists:
            return None
        password = secrets.token_urlsafe(12)
        admin = Account(email=email, password_hash=hasher.hash(password), role=Role.ADMIN, email_verified=True)
        session.add(admin)
        await session.flush()
        session.add(AuditEntry(actor_id=admin.id, action="account.admin_created", subject=email))
    return AdminLogin(email=email, password=password)
