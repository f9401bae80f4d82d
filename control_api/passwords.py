"""Password recovery and change: forgot (mail a code), reset (code + new password), change (signed in).

Reset and change end every session: all refresh tokens of the account are revoked and its
revocation epoch moves (every live access, room and socket token dies at once).
Reset codes are guarded by ``control_api.auth_limits`` (lockout per address, mails per address).
"""

from __future__ import annotations

import time

from control_api.accounts import (
    EMAIL,
    PASSWORD,
    check_password,
    client_ip,
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
    # Same answer, same work (one hash), same time whether or not the account exists.
    services, email, started = call.services, call.body["email"], time.monotonic()
    await services.auth_limits.admit(client_ip(call), email)
    await services.passwords.burn(email)
    out = None
    async with services.sessions() as session, session.begin():
        account = await find_by_email(session, email)
        if account is not None and await services.auth_limits.may_mail(email):
            _, out = mail_code(session, account, "reset")
    if out is not None:
        services.postman.post(out)
    await services.auth_limits.answer_floor(started)
    return Reply({"status": "a code was mailed if the account exists"}, 202)


async def _reset(call: Call) -> Reply:
    services, email = call.services, call.body["email"]
    await services.auth_limits.admit(client_ip(call), email)
    await services.auth_limits.take_code_try("reset", email)
    new_hash = await hash_password(services, call.body["new_password"])
    async with services.sessions() as session, session.begin():
        account = await find_by_email(session, email)
        await spend_code(session, services.auth_limits, email, account, "reset", call.body["code"])
        assert account is not None
        account.password_hash = new_hash
        await revoke_all(session, account.id)
    await services.revocations.revoke(account.id)
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
    await services.revocations.revoke(account.id)
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
