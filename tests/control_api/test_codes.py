"""Items 6 and 7 of issue 12: emailed codes cannot be brute-forced (a lockout per address over all
its codes, which a fresh /auth/forgot does not reset), forgot cannot flood a mailbox, and the sign-in
doors are limited per email as well as per address."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.control_api.conftest import ON_CLUSTER_TOO, Api, api_settings


@pytest.fixture
async def api(make_api: Callable[..., Awaitable[Api]]) -> Api:
    """The per-email request limit lifted, so these tests meet the code and mail limits alone."""
    return await make_api(api_settings(auth_email_per_min=1000))


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def _mails_to(api: Api, email: str) -> list[tuple[str, str, str]]:
    return [m for m in api.outbox.sent if m[0] == email]


async def _reset(api: Api, email: str, code: str) -> tuple[int, Any]:
    return await api.call("POST", "/auth/reset", json={"email": email, "code": code, "new_password": "new-password-9"})


async def test_five_wrong_codes_lock_the_address_across_fresh_codes(api: Api) -> None:
    user = await api.user()
    assert (await api.call("POST", "/auth/forgot", json={"email": user.email}))[0] == 202
    first = api.outbox.last_code(user.email)
    for _ in range(3):
        assert (await _reset(api, user.email, _wrong(first)))[0] == 401
    # A fresh code does not bring a fresh budget of tries.
    assert (await api.call("POST", "/auth/forgot", json={"email": user.email}))[0] == 202
    second = api.outbox.last_code(user.email)
    for _ in range(2):
        assert (await _reset(api, user.email, _wrong(second)))[0] == 401
    status, body = await _reset(api, user.email, second)  # right, but the address is locked
    assert status == 429 and body["title"] == "Too many requests" and "wrong codes" in body["detail"]
    resp = await api.client.post("/api/auth/reset", json={"email": user.email, "code": second,
                                                          "new_password": "new-password-9"})
    assert resp.status == 429 and 800 < int(resp.headers["Retry-After"]) <= 900
    assert (await api.call("POST", "/auth/login", json={"email": user.email, "password": "new-password-9"}))[0] == 401
    # Verification codes are counted apart.
    assert (await api.call("POST", "/auth/verify", json={"email": user.email, "code": "000000"}))[0] == 401


async def test_concurrent_guesses_cannot_outrun_the_count(api: Api) -> None:
    user = await api.user()
    assert (await api.call("POST", "/auth/forgot", json={"email": user.email}))[0] == 202
    code = api.outbox.last_code(user.email)
    guesses = [f"{(int(code) + i) % 1_000_000:06d}" for i in range(1, 21)]
    answers = await asyncio.gather(*(_reset(api, user.email, guess) for guess in guesses))
    statuses = [status for status, _ in answers]
    # 401: a guess weighed and wrong; 429: refused by the lock; 503: shed by admission on a busy box
    # before it was weighed (it counts nothing, so it is no way around the count either).
    assert set(statuses) <= {401, 429, 503}, statuses
    weighed = statuses.count(401)
    assert weighed <= 5, statuses
    # One at a time, the guesses left to the address: none when five were weighed above.
    for guess in (f"{(int(code) + i) % 1_000_000:06d}" for i in range(21, 41)):
        status, _ = await _reset(api, user.email, guess)
        if status == 503:
            await asyncio.sleep(0.2)
            continue
        if status != 401:
            break
        weighed += 1
    assert status == 429 and weighed == 5, (status, weighed)
    assert (await _reset(api, user.email, code))[0] in (429, 503)  # the right code is locked out too


async def test_the_lockout_acts_the_same_for_an_address_without_an_account(api: Api) -> None:
    answers = [await _reset(api, "ghost@example.com", "123456") for _ in range(6)]
    assert [status for status, _ in answers] == [401] * 5 + [429]


@ON_CLUSTER_TOO
async def test_a_right_code_clears_the_failures(api: Api) -> None:
    user = await api.user()
    assert (await api.call("POST", "/auth/forgot", json={"email": user.email}))[0] == 202
    code = api.outbox.last_code(user.email)
    for _ in range(4):
        assert (await _reset(api, user.email, _wrong(code)))[0] == 401
    assert (await _reset(api, user.email, code))[0] == 204
    assert (await api.call("POST", "/auth/forgot", json={"email": user.email}))[0] == 202
    code = api.outbox.last_code(user.email)
    for _ in range(4):
        assert (await _reset(api, user.email, _wrong(code)))[0] == 401  # four more: not locked


async def test_verification_codes_lock_too(api: Api) -> None:
    email = "newcomer@example.com"
    assert (await api.call("POST", "/auth/register", json={"email": email, "password": "newcomer-pw"}))[0] == 202
    code = api.outbox.last_code(email)
    for _ in range(5):
        assert (await api.call("POST", "/auth/verify", json={"email": email, "code": _wrong(code)}))[0] == 401
    status, body = await api.call("POST", "/auth/verify", json={"email": email, "code": code})
    assert status == 429 and body["status"] == 429


async def test_forgot_cannot_flood_a_mailbox(api: Api) -> None:
    user = await api.user()  # its verification code is the first mail of the hour
    for _ in range(6):
        assert (await api.call("POST", "/auth/forgot", json={"email": user.email}))[0] == 202
    assert len(_mails_to(api, user.email)) == 3  # api.mails_per_hour
    # Registering the taken address again would mail its owner a notice: the budget holds there too.
    assert (await api.call("POST", "/auth/register", json={"email": user.email, "password": "x-password"}))[0] == 202
    assert (await api.call("POST", "/auth/verify/resend", json={"email": user.email}))[0] == 202
    assert len(_mails_to(api, user.email)) == 3


async def test_sign_in_is_limited_per_email_and_per_address(make_api: Callable[..., Awaitable[Api]]) -> None:
    api = await make_api(api_settings(auth_email_per_min=3, auth_ip_per_min=8))
    login = {"email": "target@example.com", "password": "guess-password"}
    statuses = [(await api.call("POST", "/auth/login", json=login))[0] for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    resp = await api.client.post("/api/auth/login", json=login)
    assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1
    body = await resp.json(content_type=None)
    assert "for this email" in body["detail"] and resp.content_type == "application/problem+json"
    # Other emails from the same address, until the address's own limit.
    statuses = [(await api.call("POST", "/auth/forgot", json={"email": f"other{i}@example.com"}))[0]
                for i in range(4)]
    assert statuses[:2] == [202, 202] and statuses[-1] == 429
    fresh = {"email": "fresh@example.com", "password": "fresh-pw1"}
    status, body = await api.call("POST", "/auth/register", json=fresh)
    assert status == 429 and "from this address" in body["detail"]
