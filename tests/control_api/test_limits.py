"""Rate limits (429 with Retry-After, tiers) and Idempotency-Key replays, through HTTP and Redis."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control_api.errors import RateLimited
from control_api.limits import WINDOW_S, RateLimits, retry_after, sliding_estimate
from control_api.models import Role
from control_api.services import SERVICES, Caller
from tests.control_api.conftest import ON_CLUSTER_TOO, Api, api_settings


@given(st.integers(0, 10_000), st.integers(1, 10_000), st.floats(0, 0.999), st.integers(1, 5_000))
def test_retry_after_is_enough(previous: int, current: int, fraction: float, limit: int) -> None:
    if sliding_estimate(previous, current, fraction) <= limit:
        return
    wait = retry_after(previous, current, fraction, limit)
    assert 1 <= wait
    later = fraction + wait / WINDOW_S
    if later < 1.0:  # still within this window: the estimate has dropped under the limit
        assert sliding_estimate(previous, current, later) <= limit + 1e-9


@ON_CLUSTER_TOO
async def test_sliding_window_counts_the_previous_window(redis: Any) -> None:
    limits = RateLimits(redis, per_ip=10, per_user=5, per_premium=50)
    start = 1_000_000 * WINDOW_S
    for _ in range(10):
        assert (await limits.hit("ip", "1.2.3.4", 10, now=start + 1)).allowed
    verdict = await limits.hit("ip", "1.2.3.4", 10, now=start + 2)
    assert not verdict.allowed and verdict.retry_after_s >= 1
    # Early in the next window most of the last one still counts; late in it, little does.
    assert not (await limits.hit("ip", "1.2.3.4", 10, now=start + WINDOW_S + 1)).allowed
    assert (await limits.hit("ip", "1.2.3.4", 10, now=start + 2 * WINDOW_S - 1)).allowed
    assert (await limits.hit("ip", "1.2.3.5", 10, now=start + 1)).allowed


@pytest.fixture
async def tight(make_api) -> Api:  # type: ignore[no-untyped-def]
    return await make_api(api_settings(rate_user_per_min=40, rate_premium_per_min=100, rate_ip_per_min=1000))


@ON_CLUSTER_TOO
async def test_user_limit_answers_429_with_retry_after(tight: Api) -> None:
    user = await tight.user()
    statuses = []
    for _ in range(45):
        resp = await tight.client.get("/api/me", headers=user.auth)
        statuses.append(resp.status)
        if resp.status == 429:
            assert int(resp.headers["Retry-After"]) >= 1
            body = await resp.json(content_type=None)
            assert body["status"] == 429 and resp.content_type == "application/problem+json"
            break
    assert statuses[-1] == 429 and statuses.count(200) >= 30


@ON_CLUSTER_TOO
async def test_premium_tier_has_a_larger_limit(tight: Api) -> None:
    limits = tight.app._subapps[0][SERVICES].limits  # type: ignore[attr-defined]
    free = Caller(uuid.uuid4(), Role.USER, premium=False)
    for _ in range(40):
        await limits.check("10.0.0.1", free)
    with pytest.raises(RateLimited, match="40 requests"):
        await limits.check("10.0.0.1", free)
    # The same user with a premium token: the larger limit applies.
    await limits.check("10.0.0.1", Caller(free.user_id, Role.USER, premium=True))


@ON_CLUSTER_TOO
async def test_idempotency_key_replays_the_same_response(api: Api) -> None:
    a, b = await api.user("idem1"), await api.user("idem2")
    conv = (await api.call("POST", "/conversations", a, json={"members": [b.id]}))[1]
    path = f"/conversations/{conv['id']}/messages"
    headers = {"Idempotency-Key": "msg-1"}
    first = await api.call("POST", path, a, json={"text": "once"}, headers=headers)
    second = await api.call("POST", path, a, json={"text": "once"}, headers=headers)
    assert first == second and first[0] == 201
    texts = [m["text"] for m in (await api.call("GET", f"{path}", b))[1]["items"]]
    assert texts == ["once"]
    status, body = await api.call("POST", path, a, json={"text": "different"}, headers=headers)
    assert status == 422 and body["errors"][0]["field"] == "Idempotency-Key"
    # A refused request frees its key: a corrected retry acts.
    status, _ = await api.call("POST", path, a, json={}, headers={"Idempotency-Key": "msg-2"})
    assert status == 422
    status, _ = await api.call("POST", path, a, json={"text": "fixed"}, headers={"Idempotency-Key": "msg-2"})
    assert status == 201


@ON_CLUSTER_TOO
async def test_idempotency_concurrent_requests_act_once(api: Api) -> None:
    email = {"email": "race@example.com", "password": "race-password"}
    results = await asyncio.gather(*(
        api.call("POST", "/auth/register", json=email, headers={"Idempotency-Key": "reg-1"}) for _ in range(4)
    ))
    statuses = sorted(status for status, _ in results)
    assert statuses.count(202) >= 1 and set(statuses) <= {202, 409}
    assert len({str(body) for status, body in results if status == 202}) == 1  # one answer, replayed
    assert [to for to, _, _ in api.outbox.sent] == ["race@example.com"]  # one account, one code mailed
