"""A saturated API sheds: 503 with Retry-After at once, never another 5xx, and it recovers.

A request is held inside the gate by sending its body slowly (the handler waits for the body, after
admission), so "saturated" is a fact of the test, not a matter of timing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from control_api.admission import ADMISSION, Admission
from tests.control_api.conftest import Api, User, api_settings
from tests.control_api.test_rooms import new_room


class HeldBody:
    """A request body that stops after its first byte until released."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.release = asyncio.Event()

    async def chunks(self) -> AsyncIterator[bytes]:
        yield self._data[:1]
        await self.release.wait()
        yield self._data[1:]


async def held_token_request(api: Api, user: User, room: str) -> tuple[HeldBody, asyncio.Task[int]]:
    body = HeldBody(b'{"role": "viewer"}')
    headers = {**user.auth, "Content-Type": "application/json"}

    async def send() -> int:
        resp = await api.client.post(f"/api/rooms/{room}/token", data=body.chunks(), headers=headers)
        await resp.read()
        return resp.status

    task = asyncio.create_task(send())
    await _until(lambda: _admission(api).in_flight > 0)  # the held request is inside the gate
    return body, task


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")


def _admission(api: Api) -> Admission:
    return api.app._subapps[0][ADMISSION]  # the /api sub-application's gate


async def test_saturated_api_answers_503_with_retry_after_then_recovers(make_api) -> None:  # type: ignore[no-untyped-def]
    api = await make_api(api_settings(max_in_flight=1, admission_queue=0))
    user = await api.user()
    room = await new_room(api, user)
    held, task = await held_token_request(api, user, room)

    status, body = await api.call("POST", f"/rooms/{room}/token", user, json={"role": "viewer"})
    assert status == 503
    assert body["status"] == 503 and body["retry_after"] >= 1
    resp = await api.client.get("/api/", headers=user.auth)
    assert resp.status == 503
    assert int(resp.headers["Retry-After"]) >= 1
    assert resp.content_type == "application/problem+json"

    held.release.set()
    assert await task == 200  # what was admitted is served
    status, _ = await api.call("POST", f"/rooms/{room}/token", user, json={"role": "viewer"})
    assert status == 200  # the slot came back


async def test_a_short_queue_waits_and_beyond_it_sheds(make_api) -> None:  # type: ignore[no-untyped-def]
    api = await make_api(api_settings(max_in_flight=1, admission_queue=1, admission_wait_ms=60_000))
    user = await api.user()
    room = await new_room(api, user)
    held, task = await held_token_request(api, user, room)

    queued = asyncio.create_task(api.call("POST", f"/rooms/{room}/token", user, json={"role": "viewer"}))
    await _until(lambda: bool(_admission(api)._waiters))
    status, _ = await api.call("POST", f"/rooms/{room}/token", user, json={"role": "viewer"})
    assert status == 503  # the queue holds one

    held.release.set()
    assert await task == 200
    status, body = await queued
    assert status == 200 and body["grants"]["room"] == room
    assert _admission(api).in_flight == 0


async def test_a_burst_past_capacity_gets_only_successes_and_503s(make_api) -> None:  # type: ignore[no-untyped-def]
    api = await make_api(api_settings(max_in_flight=2, admission_queue=2))
    user = await api.user()
    room = await new_room(api, user)
    statuses = await asyncio.gather(*(api.call("POST", f"/rooms/{room}/token", user, json={"role": "viewer"})
                                      for i in range(60)))
    codes = {status for status, _ in statuses}
    assert codes <= {200, 503}, codes
    assert _admission(api).in_flight == 0
    status, _ = await api.call("POST", f"/rooms/{room}/token", user, json={"role": "viewer"})
    assert status == 200


class LateLoop:
    """Stands in for the loop-lag probe: the loop is as late as the test says."""

    def __init__(self) -> None:
        self.late_s = 0.0

    def now(self) -> float:
        return self.late_s

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass


async def test_a_late_event_loop_sheds_new_requests_until_it_catches_up(make_api) -> None:  # type: ignore[no-untyped-def]
    api = await make_api(api_settings(lag_shed_ms=100))
    user = await api.user()
    room = await new_room(api, user)
    late = LateLoop()
    _admission(api).lag = late  # type: ignore[assignment]
    late.late_s = 0.5
    # A late loop with none of the API's requests in it is not the API's backlog: served.
    status, _ = await api.call("POST", f"/rooms/{room}/token", user, json={"role": "viewer"})
    assert status == 200
    held, task = await held_token_request(api, user, room)  # now a request is in flight: shed
    status, body = await api.call("POST", f"/rooms/{room}/token", user, json={"role": "viewer"})
    assert status == 503 and body["retry_after"] >= 1
    late.late_s = 0.0
    status, _ = await api.call("POST", f"/rooms/{room}/token", user, json={"role": "viewer"})
    assert status == 200
    held.release.set()
    assert await task == 200


async def test_a_queued_request_whose_turn_comes_late_is_shed_not_started(make_api) -> None:  # type: ignore[no-untyped-def]
    api = await make_api(api_settings(max_in_flight=1, admission_queue=1, admission_wait_ms=60_000, lag_shed_ms=100))
    user = await api.user()
    room = await new_room(api, user)
    late = LateLoop()
    _admission(api).lag = late  # type: ignore[assignment]
    held, task = await held_token_request(api, user, room)
    queued = asyncio.create_task(api.call("POST", f"/rooms/{room}/token", user, json={"role": "viewer"}))
    await _until(lambda: bool(_admission(api)._waiters))
    late.late_s = 0.5  # the loop fell behind while the request waited
    held.release.set()
    assert await task == 200  # what was started is served
    status, body = await queued
    assert status == 503 and body["retry_after"] >= 1
    assert _admission(api).in_flight == 0  # the slot it was handed went back
    late.late_s = 0.0
    assert (await api.call("POST", f"/rooms/{room}/token", user, json={"role": "viewer"}))[0] == 200
