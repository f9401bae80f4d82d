"""Accounts: registration, email verification, login, rotating refresh tokens, logout, and the
first administrator. Passwords are argon2 hashes, computed off the event loop."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_api import mail, notifications
from control_api.access import digest, new_code, new_secret
from control_api.errors import Conflict, Forbidden, Unauthenticated
from control_api.http import Call, Reply, Route
from control_api.models import Account, AuditEntry, EmailCode, RefreshToken, Role
from control_api.sanctions import active_ban
from control_api.schema import Field, Schema
from control_api.services import Services

CODE_TTL = timedelta(minutes=30)
CODE_ATTEMPTS = 5
EMAIL = Field("email", max_len=320)
PASSWORD = Field("string", min_len=8, max_len=128, description="8 to 128 characters")


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


async def hash_password(services: Services, password: str) -> str:
    return await asyncio.to_thread(services.hasher.hash, password)


async def check_password(services: Services, stored: str | None, password: str) -> bool:
    """True when ``password`` matches; with no stored hash it still spends the same time."""
    def verify() -> bool:
        try:
            return services.hasher.verify(stored or services.dummy_hash, password) and stored is not None
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify)


async def find_by_email(session: AsyncSession, email: str) -> Account | None:
    return await session.scalar(
        select(Account).where(func.lower(Account.email) == email.lower(), Account.deleted_at.is_(None))
    )


def mail_code(session: AsyncSession, account: Account, purpose: str) -> tuple[EmailCode, Any]:
    """A fresh code for ``purpose`` and its outbox mail (both in ``session``'s transaction)."""
    code = new_code()
    row = EmailCode(account_id=account.id, purpose=purpose, code_hash=digest(f"{account.id}:{code}"),
                    expires_at=datetime.now(UTC) + CODE_TTL, attempts=0)
    session.add(row)
    subject, verb = (
        ("Your Switchboard verification code", "verify your email")
        if purpose == "verify" else ("Your Switchboard password reset code", "reset your password")
    )
    out = mail.enqueue(session, account.email, subject, f"Use the code {code} to {verb}. It expires in 30 minutes.")
    return row, out


async def spend_code(session: AsyncSession, account: Account | None, purpose: str, code: str) -> None:
    """Marks the newest live code used when it matches; raises Unauthenticated otherwise."""
    if account is None:
        raise Unauthenticated("the code is wrong or expired")
    row = await session.scalar(
        select(EmailCode)
        .where(EmailCode.account_id == account.id, EmailCode.purpose == purpose, EmailCode.used_at.is_(None))
        .where(EmailCode.expires_at > datetime.now(UTC))
        .order_by(EmailCode.id.desc()).limit(1).with_for_update()
    )
    if row is None or row.attempts >= CODE_ATTEMPTS:
        raise Unauthenticated("the code is wrong or expired")
    if not secrets.compare_digest(row.code_hash, digest(f"{account.id}:{code}")):
        row.attempts += 1
        await session.commit()
        raise Unauthenticated("the code is wrong or expired")
    row.used_at = datetime.now(UTC)


def issue_tokens(session: AsyncSession, services: Services, account: Account, family: uuid.UUID) -> dict[str, Any]:
    """A new access token and refresh token (added to ``session``) for ``account``."""
    secret = new_secret()
    session.add(RefreshToken(
        account_id=account.id, family=family, token_hash=digest(secret),
        expires_at=datetime.now(UTC) + timedelta(seconds=services.settings.refresh_ttl_s),
    ))
    return {
        "access_token": services.access.sign(account.id, account.role, account.premium),
        "token_type": "Bearer",
        "expires_in": services.access.ttl_s,
        "refresh_token": secret,
        "user_id": str(account.id),
    }


async def revoke_all(session: AsyncSession, account_id: uuid.UUID) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.account_id == account_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )


async def _register(call: Call) -> Reply:
    services = call.services
    password_hash = await hash_password(services, call.body["password"])
    try:
        async with services.sessions() as session, session.begin():
            account = Account(email=call.body["email"], password_hash=password_hash, role=Role.USER)
            session.add(account)
            await session.flush()
            _, out = mail_code(session, account, "verify")
    except IntegrityError:
        raise Conflict("an account with this email exists") from None
    await mail.deliver(services.sessions, services.mailer, out)
    return Reply({"id": str(account.id), "email": account.email, "email_verified": False}, 201)


async def _verify(call: Call) -> Reply:
    async with call.services.sessions() as session, session.begin():
        account = await find_by_email(session, call.body["email"])
        await spend_code(session, account, "verify", call.body["code"])
        assert account is not None
        first = not account.email_verified
        account.email_verified = True
        welcome = [notifications.add(session, account.id, "welcome", {})] if first else []
    await notifications.push(call.services.realtime, welcome)
    return Reply({"email": account.email, "email_verified": True})


async def _resend(call: Call) -> Reply:
    out = None
    async with call.services.sessions() as session, session.begin():
        account = await find_by_email(session, call.body["email"])
        if account is not None and not account.email_verified:
            _, out = mail_code(session, account, "verify")
    if out is not None:
        await mail.deliver(call.services.sessions, call.services.mailer, out)
    return Reply({"status": "sent if the account exists and is unverified"}, 202)


async def _login(call: Call) -> Reply:
    services = call.services
    async with services.sessions() as session, session.begin():
        account = await find_by_email(session, call.body["email"])
        ok = await check_password(services, account.password_hash if account else None, call.body["password"])
        if account is None or not ok:
            raise Unauthenticated("wrong email or password")
        if await active_ban(session, account.id) is not None:
            raise Forbidden("this account is banned")
        tokens = issue_tokens(session, services, account, uuid.uuid4())
    return Reply(tokens)


async def _refresh(call: Call) -> Reply:
    services = call.services
    now = datetime.now(UTC)
    async with services.sessions() as session:
        async with session.begin():
            row = await session.scalar(
                select(RefreshToken).where(RefreshToken.token_hash == digest(call.body["refresh_token"]))
                .with_for_update()
            )
            if row is None or row.revoked_at is not None or row.expires_at <= now:
                raise Unauthenticated("refresh token invalid, expired or revoked")
            if row.used_at is not None:
                # A spent token came back: someone holds a copy. End the whole family.
                await session.execute(
                    update(RefreshToken).where(RefreshToken.family == row.family).values(revoked_at=now)
                )
                reused = True
            else:
                reused = False
                account = await session.get(Account, row.account_id)
                if account is None or account.deleted_at is not None:
                    raise Unauthenticated("refresh token invalid, expired or revoked")
                if await active_ban(session, account.id) is not None:
                    raise Forbidden("this account is banned")
                row.used_at = now
                tokens = issue_tokens(session, services, account, row.family)
    if reused:
        raise Unauthenticated("refresh token reused; every session of this login is revoked")
    return Reply(tokens)


async def _logout(call: Call) -> Reply:
    async with call.services.sessions() as session, session.begin():
        row = await session.scalar(
            select(RefreshToken).where(RefreshToken.token_hash == digest(call.body["refresh_token"]))
        )
        if row is not None:
            await session.execute(
                update(RefreshToken)
                .where(RefreshToken.family == row.family, RefreshToken.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
    return Reply(None, 204)


def routes() -> list[Route]:
    login = Schema({"email": EMAIL, "password": Field("string", min_len=1, max_len=128)})
    refresh = Schema({"refresh_token": Field("string", min_len=1, max_len=200)})
    code = Field("string", pattern=r"[0-9]{6}", description="the 6-digit code from the mail")
    return [
        Route("POST", "/auth/register", _register, "Create an account; a verification code is mailed", "accounts",
              auth=False, body=Schema({"email": EMAIL, "password": PASSWORD}), ok=201, idempotent=True),
        Route("POST", "/auth/verify", _verify, "Verify the email with the mailed code", "accounts", auth=False,
              body=Schema({"email": EMAIL, "code": code})),
        Route("POST", "/auth/verify/resend", _resend, "Mail a new verification code", "accounts", auth=False,
              body=Schema({"email": EMAIL}), ok=202),
        Route("POST", "/auth/login", _login, "Log in: a 15-minute access token and a refresh token", "accounts",
              auth=False, body=login),
        Route("POST", "/auth/refresh", _refresh, "Rotate a refresh token (a reused one revokes its family)",
              "accounts", auth=False, body=refresh),
        Route("POST", "/auth/logout", _logout, "Revoke a refresh token and its family", "accounts", auth=False,
              body=refresh, ok=204),
    ]
