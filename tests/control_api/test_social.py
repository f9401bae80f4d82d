"""Social graph through HTTP: follows (with auto-accept), likes, blocks (Postgres and Redis), search."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from control_api.models import Account, Role
from control_api.services import SERVICES
from switchboard.keyspace import SANCTIONS_CHANNEL
from switchboard.keyspace import blocks as blocks_key
from switchboard.keyspace import friends as friends_key
from tests.control_api.conftest import ON_CLUSTER_TOO, Api


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


@ON_CLUSTER_TOO
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


@ON_CLUSTER_TOO
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


def _ids(members: set[bytes]) -> set[str]:
    return {m.decode() for m in members}


@ON_CLUSTER_TOO
async def test_friends_are_mirrored_into_redis_for_presence(api: Api, redis: Any) -> None:
    """An accepted follow, either way, reaches ``keyspace.friends`` both ways (what /space lists);
    a pending or declined request never puts a pair in; the pair leaves when no accepted follow is
    left (unfollow, follower removal) or at a block."""
    a, b, c, d = await api.user("fr_a"), await api.user("fr_b"), await api.user("fr_c"), await api.user("fr_d")
    await api.call("POST", f"/users/{b.id}/follow", a)
    assert await redis.smembers(friends_key(a.id)) == set()  # pending
    await api.call("POST", f"/me/follow-requests/{a.id}/accept", b)
    assert _ids(await redis.smembers(friends_key(a.id))) == {b.id}  # a follows b: both sides see it
    assert _ids(await redis.smembers(friends_key(b.id))) == {a.id}
    await api.call("POST", f"/users/{a.id}/follow", b)
    await api.call("POST", f"/me/follow-requests/{b.id}/accept", a)
    assert _ids(await redis.smembers(friends_key(a.id))) == {b.id}
    assert (await api.call("DELETE", f"/users/{b.id}/follow", a))[0] == 204
    assert _ids(await redis.smembers(friends_key(a.id))) == {b.id}  # b still follows a
    assert (await api.call("DELETE", f"/users/{a.id}/follow", b))[0] == 204
    assert await redis.smembers(friends_key(a.id)) == set() and await redis.smembers(friends_key(b.id)) == set()
    # A declined request: nothing.
    await api.call("POST", f"/users/{a.id}/follow", d)
    assert (await api.call("POST", f"/me/follow-requests/{d.id}/decline", a))[0] == 200
    assert await redis.smembers(friends_key(d.id)) == set()
    # Both ask: auto-accepted; removing a follower keeps the pair while a still follows c.
    await api.call("POST", f"/users/{c.id}/follow", a)
    await api.call("POST", f"/users/{a.id}/follow", c)
    assert _ids(await redis.smembers(friends_key(c.id))) == {a.id}
    assert (await api.call("DELETE", f"/me/followers/{c.id}", a))[0] == 204
    assert _ids(await redis.smembers(friends_key(c.id))) == {a.id}  # a -> c stands
    assert (await api.call("DELETE", f"/me/followers/{a.id}", c))[0] == 204
    assert await redis.smembers(friends_key(a.id)) == set()
    # Connected again (c asks, a accepts), then a block: out of both sets.
    await api.call("POST", f"/users/{a.id}/follow", c)
    await api.call("POST", f"/me/follow-requests/{c.id}/accept", a)
    assert _ids(await redis.smembers(friends_key(a.id))) == {c.id}
    await api.call("POST", f"/users/{a.id}/block", c)
    assert await redis.smembers(friends_key(a.id)) == set() and await redis.smembers(friends_key(c.id)) == set()


@ON_CLUSTER_TOO
async def test_friends_rebuild_from_postgres(api: Api, redis: Any) -> None:
    a, b, mod = await api.user("rb_a"), await api.user("rb_b"), await api.user("rb_mod")
    c, pending = await api.user("rb_c"), await api.user("rb_p")
    await api.call("POST", f"/users/{b.id}/follow", a)
    await api.call("POST", f"/users/{a.id}/follow", b)
    await api.call("POST", f"/users/{c.id}/follow", a)  # one way, accepted
    await api.call("POST", f"/me/follow-requests/{a.id}/accept", c)
    await api.call("POST", f"/users/{a.id}/follow", pending)  # never accepted
    await redis.delete(friends_key(a.id), friends_key(b.id), friends_key(c.id))  # a lost mirror
    await redis.sadd(friends_key(mod.id), a.id)  # and a stale entry
    assert (await api.call("POST", "/moderation/friends/rebuild", a))[0] == 403
    services = api.app._subapps[0][SERVICES]  # type: ignore[attr-defined]
    async with services.sessions() as session, session.begin():
        account = await session.get(Account, uuid.UUID(mod.id))
        assert account is not None
        account.role = Role.MODERATOR
    status, body = await api.call("POST", "/moderation/friends/rebuild", mod)
    assert status == 200 and body["pairs"] >= 2
    assert _ids(await redis.smembers(friends_key(a.id))) == {b.id, c.id}
    assert _ids(await redis.smembers(friends_key(c.id))) == {a.id}
    assert await redis.smembers(friends_key(pending.id)) == set()
    assert await redis.smembers(friends_key(mod.id)) == set()


@ON_CLUSTER_TOO
async def test_a_block_is_announced_to_the_nodes(api: Api, redis: Any) -> None:
    """After the block sets are written, ``{"user": blocker, "kind": "block", "other": blocked}``
    goes out on the sanctions channel (nodes end a call or match between the two)."""
    a, b = await api.user("bn_a"), await api.user("bn_b")
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(SANCTIONS_CHANNEL)
    try:
        assert (await api.call("POST", f"/users/{b.id}/block", a))[0] == 201
        async with asyncio.timeout(5):
            while (item := await pubsub.get_message(timeout=1.0)) is None:
                pass
        assert json.loads(item["data"]) == {"user": a.id, "kind": "block", "other": b.id}
    finally:
        await pubsub.aclose()
