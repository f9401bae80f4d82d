"""Password recovery and change: forgot (mail a code), reset (code + new password), change (signed in).

Each of them ends every other session: all refresh tokens of the account are revoked.
"""

from __future__ import annotations

from control_api import mail
from control_api.accounts import (
    EMAIL,
    PASSWORD,
    check_password,
    find_by_email,
    hash_password,
    mail_code,
    revoke_all,
    spend_code,
)
from control_api.errors import Unauthenticated
from control_api.http import Call, Reply, Route
from control_api.models import Account
from control_api.schema import Field, Schema


async def _forgot(call: Call) -> Reply:
    out = None
    async with call.services.sessions() as session, session.begin():
        account = await find_by_email(session, call.body["email"])
        if account is not None:
            _, out = mail_code(session, account, "reset")
    if out is not None:
        await mail.deliver(call.services.sessions, call.services.mailer, out)
    # Same answer whether or not the account exists: no account enumeration here.
    return Reply({"status": "a code was mailed if the account exists"}, 202)


async def _reset(call: Call) -> Reply:
    new_hash = await hash_password(call.services, call.body["new_password"])
    async with call.services.sessions() as session, session.begin():
        account = await find_by_email(session, call.body["email"])
        await spend_code(session, account, "reset", call.body["code"])
        assert account is not None
        account.password_hash = new_hash
        await revoke_all(session, account.id)
    return Reply(None, 204)


async def _change(call: Call) -> Reply:
    services = call.services
    async with services.sessions() as session:
        account = await session.get(Account, call.me.user_id)
        stored = account.password_hash if account is not None and account.deleted_at is None else None
    if not await check_password(services, stored, call.body["current_password"]):
        raise Unauthenticated("the current password is wrong")
    new_hash = await hash_password(services, call.body["new_password"])
    async with services.sessions() as session, session.begin():
        account = await session.get(Account, call.me.user_id)
        assert account is not None
        account.password_hash = new_hash
        await revoke_all(session, account.id)
    return Reply(None, 204)


def routes() -> list[Route]:
    code = Field("string", pattern=r"[0-9]{6}", description="the 6-digit code from the mail")
    return [
        Route("POST", "/auth/forgot", _forgot, "Mail a password reset code", "accounts", auth=False,
              body=Schema({"email": EMAIL}), ok=202),
        Route("POST", "/auth/reset", _reset, "Set a new password with the mailed code; ends every session",
              "accounts", auth=False, body=Schema({"email": EMAIL, "code": code, "new_password": PASSWORD}), ok=204),
        Route("POST", "/me/password", _change, "Change my password; ends every session", "accounts",
              body=Schema({"current_password": Field("string", min_len=1, max_len=128), "new_password": PASSWORD}),
              ok=204),
    ]
