"""Social graph through HTTP: follows (with auto-accept), likes, blocks (Postgres and Redis), search."""

from __future__ import annotations

from typing import Any

from switchboard.keyspace import blocks as blocks_key
from tests.control_api.conftest import Api


async def test_follow_request_accept_decline_remove(api: Api) -> None:
    a, b, c = await api.user("ann"), await api.user("ben"), await api.user("cat")
    status, body = await api.call("POST", f"/users/{b.id}/follow", a)
    assert (status, body["status"]) == (201, "pending")
    status, body = await api.call("GET", "/me/follow-requests", b)
    assert [p["pseudo"] for p in body["items"]] == ["ann"]
    status, body = await api.call("POST", f"/me/follow-requests/{a.id}/accept", b)
    assert body["status"] == "accepted"
    await api.call("POST", f"/users/{c.id}/follow", a)
    status, body = await api.call("POST", f"/me/follow-requests/{a.id}/decline", c)
    assert body["status"] == "declined"
    assert (await api.call("POST", f"/me/follow-requests/{a.id}/accept", c))[0] == 404
    status, body = await api.call("GET", "/me/follows", a)
    assert [p["pseudo"] for p in body["items"]] == ["ben"]
    assert (await api.call("DELETE", f"/me/followers/{a.id}", b))[0] == 204
    assert (await api.call("GET", "/me/follows", a))[1]["items"] == []
    kinds = [n["kind"] for n in (await api.call("GET", "/notifications", a))[1]["items"]]
    assert "follow_accepted" in kinds


async def test_mutual_requests_auto_accept_and_newest_first(api: Api) -> None:
    a, b, c = await api.user("amy"), await api.user("bea"), await api.user("cid")
    await api.call("POST", f"/users/{b.id}/follow", a)
    _status, body = await api.call("POST", f"/users/{a.id}/follow", b)
    assert body["status"] == "accepted"
    await api.call("POST", f"/users/{a.id}/follow", c)
    await api.call("POST", f"/users/{c.id}/follow", a)
    follows = (await api.call("GET", "/me/follows", a))[1]["items"]
    assert [p["pseudo"] for p in follows] == ["cid", "bea"]
    assert (await api.call("POST", f"/users/{a.id}/follow", a))[0] == 422


async def test_likes_count_once_per_pair(api: Api) -> None:
    a, b, c = await api.user("alf"), await api.user("bob"), await api.user("cyd")
    assert (await api.call("POST", f"/users/{c.id}/like", a))[1]["total_likes"] == 1
    assert (await api.call("POST", f"/users/{c.id}/like", a))[1]["total_likes"] == 1
    assert (await api.call("POST", f"/users/{c.id}/like", b))[1]["total_likes"] == 2
    assert (await api.call("GET", f"/users/{c.id}", a))[1]["total_likes"] == 2


async def test_block_hides_both_ways_and_reaches_redis(api: Api, redis: Any) -> None:
    a, b = await api.user("alpha"), await api.user("alphonse")
    await api.call("POST", f"/users/{b.id}/follow", a)
    status, _ = await api.call("POST", f"/users/{b.id}/block", a)
    assert status == 201
    assert await redis.smembers(blocks_key(a.id)) == {b.id.encode()}
    assert await redis.smembers(blocks_key(b.id)) == {a.id.encode()}
    for viewer, other in ((a, b), (b, a)):
        assert (await api.call("GET", f"/users/{other.id}", viewer))[0] == 404
        assert (await api.call("POST", f"/users/{other.id}/follow", viewer))[0] == 404
        assert (await api.call("POST", f"/users/{other.id}/like", viewer))[0] == 404
        found = (await api.call("GET", "/search/users?q=alph", viewer))[1]["items"]
        assert other.id not in [p["id"] for p in found]
    assert (await api.call("GET", "/me/follow-requests", b))[1]["items"] == []
    assert (await api.call("GET", "/me/blocks", a))[1]["items"] == [b.id]
    assert (await api.call("DELETE", f"/users/{b.id}/block", a))[0] == 204
    assert await redis.smembers(blocks_key(a.id)) == set()
    assert (await api.call("GET", f"/users/{b.id}", a))[0] == 200


async def test_unblock_keeps_redis_while_the_other_block_stands(api: Api, redis: Any) -> None:
    a, b = await api.user("xa1"), await api.user("xa2")
    await api.call("POST", f"/users/{b.id}/block", a)
    await api.call("POST", f"/users/{a.id}/block", b)
    await api.call("DELETE", f"/users/{b.id}/block", a)
    assert await redis.smembers(blocks_key(a.id)) == {b.id.encode()}
    assert (await api.call("GET", f"/users/{b.id}", a))[0] == 404


async def test_search_prefix_first_and_escapes_wildcards(api: Api) -> None:
    me = await api.user("searcher")
    for pseudo in ("mo_rita", "rita", "ritalin", "Marita"):
        await api.user(pseudo)
    found = [p["pseudo"] for p in (await api.call("GET", "/search/users?q=RITA", me))[1]["items"]]
    assert found[:2] == ["rita", "ritalin"] and set(found) == {"rita", "ritalin", "mo_rita", "Marita"}
    found = [p["pseudo"] for p in (await api.call("GET", "/search/users?q=o_", me))[1]["items"]]
    assert found == ["mo_rita"]  # "_" is a literal, not a LIKE wildcard
    status, body = await api.call("GET", "/search/users", me)
    assert status == 422 and body["errors"][0]["field"] == "q"
