"""Items 21-22 of issue 12: the token routes keep account facts and room owners for about a second
(control_api/cache.py), and a ban, a revocation, a premium change or a block still acts on them at
once or as soon as the sanctions channel says so."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from control_api.cache import READ_CACHE, ReadCache
from tests.control_api.conftest import ON_CLUSTER_TOO, Api, User
from tests.control_api.moderation import make_staff, services


def _engine() -> Any:
    """An engine that is never connected (the notice handling reads nothing)."""
    from sqlalchemy.ext.asyncio import create_async_engine

    return create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:9/none")


def _cache(api: Api) -> ReadCache:
    return api.app._subapps[0][READ_CACHE]  # type: ignore[attr-defined, no-any-return]


async def _new_room(api: Api, owner: User) -> str:
    status, body = await api.call("POST", "/rooms", owner, json={})
    assert status == 201, body
    return str(body["room"])


async def _listening(api: Api) -> None:
    async with asyncio.timeout(10):
        while not _cache(api).listening:  # noqa: ASYNC110 - a flag of the cache, no event to wait on
            await asyncio.sleep(0.02)


async def test_token_routes_are_served_from_the_cache(api: Api) -> None:
    owner, viewer = await api.user(), await api.user()
    room = await _new_room(api, owner)
    await _listening(api)
    cache = _cache(api)
    hits = cache.hits
    for _ in range(3):
        assert (await api.call("POST", f"/rooms/{room}/token", viewer, json={"role": "viewer"}))[0] == 200
        assert (await api.call("POST", "/ws-token", viewer))[0] == 200
    assert cache.hits - hits >= 4  # the account and the room were read from Postgres once each


@ON_CLUSTER_TOO
async def test_a_ban_refuses_the_token_routes_at_once_despite_the_cache(api: Api) -> None:
    owner, user = await api.user(), await api.user()
    mod = await make_staff(api, await api.user())
    room = await _new_room(api, owner)
    await _listening(api)
    for _ in range(2):  # the cache now holds the user's facts: not banned
        assert (await api.call("POST", f"/rooms/{room}/token", user, json={"role": "viewer"}))[0] == 200
        assert (await api.call("POST", "/ws-token", user))[0] == 200
    status, body = await api.call("POST", f"/moderation/accounts/{user.id}/sanctions", mod, json={"kind": "ban"})
    assert status == 201, body
    # The very next request, with the access token from before the ban: revoked on both routes.
    status, body = await api.call("POST", f"/rooms/{room}/token", user, json={"role": "viewer"})
    assert status == 401 and "revoked" in body["detail"], body
    assert (await api.call("POST", "/ws-token", user))[0] == 401
    # A token dated after the ban (none can be had: login refuses a banned account) is refused too:
    # the ban mark is read on every request, whatever the cache still says.
    svc = services(api)
    epoch = await svc.revocations.epoch(uuid.UUID(user.id))
    after = svc.access.sign(uuid.UUID(user.id), svc.access.verify(user.access).role, False, not_before=epoch)
    headers = {"Authorization": f"Bearer {after}"}
    for path, body in ((f"/rooms/{room}/token", {"role": "viewer"}), ("/ws-token", None)):
        status, answer = await api.call("POST", path, headers=headers, json=body)
        assert status == 403 and answer["detail"] == "this account is banned", (path, answer)


@ON_CLUSTER_TOO
async def test_a_block_reaches_the_cached_facts_through_the_sanctions_channel(api: Api) -> None:
    owner, viewer = await api.user(), await api.user()
    room = await _new_room(api, owner)
    await _listening(api)
    assert (await api.call("POST", f"/rooms/{room}/token", viewer, json={"role": "viewer"}))[0] == 200
    assert (await api.call("POST", f"/users/{viewer.id}/block", owner))[0] == 201
    async with asyncio.timeout(10):  # the notice comes back through Redis; the TTL bounds it anyway
        while (await api.call("POST", f"/rooms/{room}/token", viewer, json={"role": "viewer"}))[0] != 404:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_without_the_channel_nothing_is_served_from_the_cache(api: Api) -> None:
    owner, viewer = await api.user(), await api.user()
    room = await _new_room(api, owner)
    await _listening(api)
    cache = _cache(api)
    await cache.close()  # as when Redis's subscription is lost: every read goes to Postgres
    hits = cache.hits
    for _ in range(3):
        assert (await api.call("POST", f"/rooms/{room}/token", viewer, json={"role": "viewer"}))[0] == 200
    assert cache.hits == hits
    await cache.close()  # twice is fine


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200),
                 st.dictionaries(st.sampled_from(["user", "other", "kind"]),
                                 st.one_of(st.text(max_size=40), st.integers(), st.none()), max_size=3)
                 .map(lambda d: __import__("json").dumps(d))))
def test_any_notice_drops_what_it_names_or_everything(data: Any) -> None:
    cache = ReadCache(_engine(), None, ttl_s=1.0)  # type: ignore[arg-type]
    cache.notice(data)  # never raises, whatever the channel carries


def test_a_notice_drops_the_accounts_it_names() -> None:
    from control_api.cache import AccountFacts

    cache = ReadCache(_engine(), None, ttl_s=60.0)  # type: ignore[arg-type]
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    facts = AccountFacts(True, False, False, False, frozenset())
    for user in (a, b, c):
        cache._keep(cache._accounts, user, facts, 60.0)
    cache.notice(f'{{"user": "{a}", "kind": "block", "other": "{b}"}}')
    assert set(cache._accounts) == {c}
    cache.notice("not json")
    assert cache._accounts == {}


async def test_a_ban_on_record_refuses_the_token_routes_without_its_redis_mark(api: Api) -> None:
    """Postgres is the truth: a ban whose Redis mirror was never written (Redis failed at the time)
    still refuses room and socket tokens, through the cached account facts."""
    from control_api.models import Sanction

    owner, user = await api.user(), await api.user()
    room = await _new_room(api, owner)
    await _listening(api)
    async with services(api).sessions() as session, session.begin():
        session.add(Sanction(account_id=uuid.UUID(user.id), kind="ban", reason="test"))
    _cache(api).forget(uuid.UUID(user.id))  # what the ban's notice would have done
    for path, body in ((f"/rooms/{room}/token", {"role": "viewer"}), ("/ws-token", None)):
        status, answer = await api.call("POST", path, user, json=body)
        assert status == 403 and answer["detail"] == "this account is banned", (path, answer)


def test_decide_grants_refuses_what_the_facts_refuse() -> None:
    import pytest

    from control_api.cache import AccountFacts
    from control_api.errors import Forbidden, NotFound, Unauthenticated
    from control_api.models import Role
    from control_api.rooms import decide_grants
    from control_api.services import Caller

    me, owner = uuid.uuid4(), uuid.uuid4()
    caller = Caller(me, Role.USER, False)
    fine = AccountFacts(True, False, False, False, frozenset())
    assert decide_grants(caller, "r", "viewer", fine, owner).subscribe is True
    for facts, error in ((None, Unauthenticated),
                         (AccountFacts(True, False, True, False, frozenset()), Unauthenticated),
                         (AccountFacts(True, False, False, True, frozenset()), Forbidden),
                         (AccountFacts(True, False, False, False, frozenset({owner})), NotFound)):
        with pytest.raises(error):
            decide_grants(caller, "r", "viewer", facts, owner)
    with pytest.raises(NotFound):
        decide_grants(caller, "r", "viewer", fine, None)
    with pytest.raises(Forbidden):
        decide_grants(caller, "r", "broadcaster", fine, owner)
    with pytest.raises(Forbidden):  # unverified owner
        decide_grants(Caller(owner, Role.USER, False), "r", "broadcaster",
                      AccountFacts(False, False, False, False, frozenset()), owner)
    premium_now = Caller(me, Role.USER, False, premium_now=True)
    assert decide_grants(premium_now, "r", "viewer", fine, owner).premium is True
