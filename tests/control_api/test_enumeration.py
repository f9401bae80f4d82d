"""Item 8 of issue 12: register, forgot and resend answer byte for byte the same whether or not the
email has an account, and do the same password-hashing work on both paths (counted here through the
public door; no timing is asserted)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from argon2 import PasswordHasher
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.control_api.conftest import Api, api_settings


class Counted:
    """Counts argon2 hashes and checks, whoever calls them."""

    def __init__(self) -> None:
        self.calls = 0

    def reset(self) -> int:
        calls, self.calls = self.calls, 0
        return calls


@pytest.fixture
def argon2_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counted]:
    counted = Counted()
    real_hash, real_verify = PasswordHasher.hash, PasswordHasher.verify

    def hash_(self: PasswordHasher, *args: Any, **kw: Any) -> str:
        counted.calls += 1
        return real_hash(self, *args, **kw)

    def verify(self: PasswordHasher, *args: Any, **kw: Any) -> bool:
        counted.calls += 1
        return real_verify(self, *args, **kw)

    monkeypatch.setattr(PasswordHasher, "hash", hash_)
    monkeypatch.setattr(PasswordHasher, "verify", verify)
    yield counted


async def _raw(api: Api, path: str, body: dict[str, str]) -> tuple[int, str, bytes]:
    resp = await api.client.post("/api" + path, json=body)
    return resp.status, resp.content_type, await resp.read()


async def test_register_answers_the_same_for_a_taken_email(api: Api, argon2_calls: Counted) -> None:
    owner = await api.user()
    sent_before = len(api.outbox.sent)
    argon2_calls.reset()
    taken = await _raw(api, "/auth/register", {"email": owner.email, "password": "attacker-pw"})
    taken_work = argon2_calls.reset()
    new = await _raw(api, "/auth/register", {"email": "someone-new@example.com", "password": "attacker-pw"})
    new_work = argon2_calls.reset()
    assert taken == new and taken[0] == 202
    assert taken_work == new_work == 1
    # Each address got one mail: the owner a notice (no code, nothing changed), the new one a code.
    (notice_to, _, notice), (code_to, subject, _) = api.outbox.sent[sent_before:]
    assert notice_to == owner.email and "already has one" in notice
    assert code_to == "someone-new@example.com" and "verification" in subject
    assert (await api.call("POST", "/auth/login", json={"email": owner.email, "password": owner.password}))[0] == 200


async def test_forgot_answers_and_works_the_same_either_way(api: Api, argon2_calls: Counted) -> None:
    owner = await api.user()
    argon2_calls.reset()
    known = await _raw(api, "/auth/forgot", {"email": owner.email})
    known_work = argon2_calls.reset()
    unknown = await _raw(api, "/auth/forgot", {"email": "nobody-here@example.com"})
    unknown_work = argon2_calls.reset()
    assert known == unknown and known[0] == 202
    assert known_work == unknown_work == 1
    assert api.outbox.sent[-1][0] == owner.email


async def test_resend_answers_and_works_the_same_either_way(api: Api, argon2_calls: Counted) -> None:
    email = "pending@example.com"
    assert (await api.call("POST", "/auth/register", json={"email": email, "password": "pending-pw"}))[0] == 202
    verified = await api.user()
    argon2_calls.reset()
    answers, work = [], []
    for address in (email, verified.email, "nobody-at-all@example.com"):
        answers.append(await _raw(api, "/auth/verify/resend", {"email": address}))
        work.append(argon2_calls.reset())
    assert answers[0] == answers[1] == answers[2] and answers[0][0] == 202
    assert work == [1, 1, 1]
    assert [to for to, _, _ in api.outbox.sent].count(email) == 2  # register, then the resend


async def test_login_works_the_same_for_an_unknown_email(api: Api, argon2_calls: Counted) -> None:
    owner = await api.user()
    argon2_calls.reset()
    wrong = await _raw(api, "/auth/login", {"email": owner.email, "password": "not-the-password"})
    known_work = argon2_calls.reset()
    unknown = await _raw(api, "/auth/login", {"email": "nobody-else@example.com", "password": "not-the-password"})
    assert wrong == unknown and wrong[0] == 401
    assert known_work == argon2_calls.reset() == 1


# Lone surrogates (category Cs) are refused by the shared input checks (issue 12 item 10, another
# branch); every other character, in any position of the address, must give the one same answer.
ANY_EMAIL = st.builds(
    lambda local, domain: f"{local}@{domain}.example",
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40),
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(email=ANY_EMAIL)
async def test_any_address_gets_the_one_answer_or_a_clear_refusal(
    make_api: Callable[..., Awaitable[Api]], email: str,
) -> None:
    api = await make_api(api_settings(answer_floor_ms=0, auth_ip_per_min=100_000, auth_email_per_min=100_000))
    reference = {path: await _raw(api, path, {"email": "reference@example.com"})
                 for path in ("/auth/forgot", "/auth/verify/resend")}
    for path, answer in reference.items():
        status, content_type, body = await _raw(api, path, {"email": email})
        assert status in (202, 422), body
        if status == 202:
            assert (status, content_type, body) == answer
        else:
            assert content_type == "application/problem+json"
    status, _, body = await _raw(api, "/auth/reset", {"email": email, "code": "123456", "new_password": "whatever-pw"})
    assert status in (401, 422), body
