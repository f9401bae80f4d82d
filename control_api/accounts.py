"""Accounts: registration, email verification, login, rotating refresh tokens, logout (one login or
everywhere), and the first administrator. Passwords are argon2 hashes, computed off the event loop
in a bounded pool (``control_api.hashing``); the open doors go through ``control_api.auth_limits``."""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_api import mail, notifications, stats
from control_api.access import digest, new_code, new_secret
from control_api.auth_limits import AuthLimits
from control_api.errors import Forbidden, Unauthenticated
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
    return await services.passwords.hash(password)


async def check_password(services: Services, stored: str | None, password: str) -> bool:
    """True when ``password`` matches; with no stored hash it still spends the same time."""
    return await services.passwords.check(stored, password)


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


async def spend_code(session: AsyncSession, limits: AuthLimits, email: str, account: Account | None, purpose: str,
                     code: str) -> None:
    """Marks the newest live code used when it matches (and clears the address's failures);
    raises Unauthenticated otherwise. The caller spent a try first (``AuthLimits.take_code_try``)."""
    row = None if account is None else await session.scalar(
        select(EmailCode)
        .where(EmailCode.account_id == account.id, EmailCode.purpose == purpose, EmailCode.used_at.is_(None))
        .where(EmailCode.expires_at > datetime.now(UTC))
        .order_by(EmailCode.id.desc()).limit(1).with_for_update()
    )
    if account is None or row is None or row.attempts >= CODE_ATTEMPTS:
        raise Unauthenticated("the code is wrong or expired")
    if not secrets.compare_digest(row.code_hash, digest(f"{account.id}:{code}")):
        row.attempts += 1
        await session.commit()
        raise Unauthenticated("the code is wrong or expired")
    row.used_at = datetime.now(UTC)
    await limits.code_spent(purpose, email)


async def issue_tokens(session: AsyncSession, services: Services, account: Account,
                       family: uuid.UUID) -> dict[str, Any]:
    """A new access token and refresh token (added to ``session``) for ``account``. The access
    token is dated no earlier than the account's revocation epoch, so a login in the very second
    of a revocation (after it) is alive."""
    secret = new_secret()
    session.add(RefreshToken(
        account_id=account.id, family=family, token_hash=digest(secret),
        expires_at=datetime.now(UTC) + timedelta(seconds=services.settings.refresh_ttl_s),
    ))
    epoch = await services.revocations.epoch(account.id)
    return {
        "access_token": services.access.sign(account.id, account.role, account.premium, not_before=epoch),
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


def client_ip(call: Call) -> str:
    return call.request.remote or "unknown"


REGISTERED = "check your mail: a code to verify the address, or a notice if it already has an account"


async def _register(call: Call) -> Reply:
    # The same answer, the same work (one hash, one mail) and the same time whether or not the email
    # has an account: the owner of an existing one is told by mail instead of the caller by a 409.
    services, email, started = call.services, call.body["email"], time.monotonic()
    await services.auth_limits.admit(client_ip(call), email)
    password_hash = await hash_password(services, call.body["password"])
    out = None
    try:
        async with services.sessions() as session, session.begin():
            account = Account(email=email, password_hash=password_hash, role=Role.USER)
            session.add(account)
            await session.flush()
            await stats.track(session, account.id, "register")
            if await services.auth_limits.may_mail(email):
                _, out = mail_code(session, account, "verify")
    except IntegrityError:
        out = await _mail_taken_notice(services, email)
    if out is not None:
        services.postman.post(out)
    await services.auth_limits.answer_floor(started)
    return Reply({"status": REGISTERED}, 202)


async def _mail_taken_notice(services: Services, email: str) -> Any:
    """The outbox mail telling an address's owner that someone tried to register it (None: over its
    mail budget, or the account went away meanwhile)."""
    async with services.sessions() as session, session.begin():
        account = await find_by_email(session, email)
        if account is None or not await services.auth_limits.may_mail(email):
            return None
        return mail.enqueue(
            session, account.email, "Your Switchboard account",
            "Someone, maybe you, tried to create a Switchboard account with this address, which already has "
            "one. To get in, log in, or reset your password with 'Forgot password'"
            + ("" if account.email_verified else ", or ask for a new verification code")
            + ". If it was not you, ignore this mail: nothing changed.",
        )


async def _verify(call: Call) -> Reply:
    services, email = call.services, call.body["email"]
    await services.auth_limits.admit(client_ip(call), email)
    await services.auth_limits.take_code_try("verify", email)
    async with services.sessions() as session, session.begin():
        account = await find_by_email(session, email)
        await spend_code(session, services.auth_limits, email, account, "verify", call.body["code"])
        assert account is not None
        first = not account.email_verified
        account.email_verified = True
        welcome = [notifications.add(session, account.id, "welcome", {})] if first else []
    await notifications.push(services.realtime, welcome)
    return Reply({"email": account.email, "email_verified": True})


async def _resend(call: Call) -> Reply:
    services, email, started = call.services, call.body["email"], time.monotonic()
    await services.auth_limits.admit(client_ip(call), email)
    await services.passwords.burn(email)  # the same work whether or not a code is minted
    out = None
    async with services.sessions() as session, session.begin():
        account = await find_by_email(session, email)
        if account is not None and not account.email_verified and await services.auth_limits.may_mail(email):
            _, out = mail_code(session, account, "verify")
    if out is not None:
        services.postman.post(out)
    await services.auth_limits.answer_floor(started)
    return Reply({"status": "sent if the account exists and is unverified"}, 202)


async def _login(call: Call) -> Reply:
    services, email = call.services, call.body["email"]
    await services.auth_limits.admit(client_ip(call), email)
    async with services.sessions() as session:
        found = await find_by_email(session, email)
    stored = found.password_hash if found is not None else None
    # Checked with no database connection held: a login waiting for a hashing slot costs no pool slot.
    if not await check_password(services, stored, call.body["password"]) or found is None:
        raise Unauthenticated("wrong email or password")
    async with services.sessions() as session, session.begin():
        account = await session.get(Account, found.id)
        if account is None or account.deleted_at is not None or account.password_hash != stored:
            raise Unauthenticated("wrong email or password")  # deleted or changed while it was checked
        if await active_ban(session, account.id) is not None:
            raise Forbidden("this account is banned")
        tokens = await issue_tokens(session, services, account, uuid.uuid4())
        await stats.track(session, account.id, "login")
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
                tokens = await issue_tokens(session, services, account, row.family)
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


async def _logout_everywhere(call: Call) -> Reply:
    me = call.me.user_id
    async with call.services.sessions() as session, session.begin():
        await revoke_all(session, me)
    await call.services.revocations.revoke(me)
    return Reply(None, 204)


def routes() -> list[Route]:
    login = Schema({"email": EMAIL, "password": Field("string", min_len=1, max_len=128)})
    refresh = Schema({"refresh_token": Field("string", min_len=1, max_len=200)})
    code = Field("string", pattern=r"[0-9]{6}", description="the 6-digit code from the mail")
    return [
        Route("POST", "/auth/register", _register,
              "Create an account; a verification code is mailed (the same answer when the email is taken: its "
              "owner is mailed a notice)", "accounts",
              auth=False, body=Schema({"email": EMAIL, "password": PASSWORD}), ok=202, idempotent=True),
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
        Route("POST", "/auth/logout-everywhere", _logout_everywhere,
              "End every session of my account: refresh tokens and every live access, room and socket token",
              "accounts", ok=204),
    ]
