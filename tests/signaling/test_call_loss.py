"""A call's node dies (SIGKILL): its parties come back through the control API and the call goes on.

Real ``switchboard node`` processes, the real control API (in this process, on the embedded Postgres
and the same Redis) and SDK clients: amy calls bob through the SFU and each decodes the other's
camera; then the node of both (or of amy only) is killed. The parties' node clients ask the API again,
start new sessions on a live node and their calls send ``call.rejoin``: the call record in Redis lives
on, its media room is opened again on the live node(s), the moved parties publish again and each
decodes the other's frames again. A party that never comes back ends the call for the other with
``node_lost``, and the call's records leave Redis; so does a paid call whose meter's node died (the API
posts its started minute and voids the rest).
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from control_api.ledger.book import Ledger
from control_api.payments.service import PAYMENTS
from signaling.calls import ENDED_KEEP_S
from switchboard.keyspace import call as call_key
from switchboard.keyspace import match_pair, user_call
from switchboard.redis_client import text
from switchboard.settings import PaymentsSettings
from switchboard_client import ApiClient, NodeClient
from switchboard_client.api import NodeToken
from switchboard_client.call import Call, Incoming, invite
from switchboard_client.media import FrameCounter, TestPattern
from tests.conftest import redis_url_of
from tests.control_api import conftest as api_conftest
from tests.signaling.node_processes import NodeProcess, node_starter  # noqa: F401 (the start_node fixture)
from tests.signaling.test_cascade import matchmaker  # noqa: F401 (the fixture)
from tests.signaling.test_drain import registered_count
from tests.signaling.test_node_loss import BACK_S, _kill, _login, _nodes_on_api_key
from tests.signaling.test_nodes import switchboard

make_api = api_conftest.make_api  # the control API's fixture (tests/control_api/conftest.py)
conformance = api_conftest.conformance  # make_api checks every answer against the OpenAPI document

SECRET = "a-shared-secret-of-the-test-nodes"
PRICE = 10


@pytest.fixture
def redis_url(request: pytest.FixtureRequest) -> str:
    """One Redis; a test parametrized with ``cluster`` for ``redis_url`` runs on the Redis Cluster."""
    if getattr(request, "param", None):
        return redis_url_of(request)
    return str(request.getfixturevalue("redis_server").url)


async def _client(base: str, account: ApiClient, first: str) -> NodeClient:
    """A node client whose first socket goes to ``first`` (the test places the parties); every later
    one goes where the API says, as after any lost node."""
    placed = [first]

    async def tokens() -> NodeToken:
        answer = await account.ws_token()
        return dataclasses.replace(answer, node=placed.pop()) if placed else answer

    node = NodeClient(base, tokens)
    await node.open()
    return node


async def _call(amy: NodeClient, bob: NodeClient) -> tuple[Call, Call]:
    incoming = bob.events("call.incoming")
    outgoing = await invite(amy, bob.user_id)
    ring = await incoming.wait_for("call.incoming")
    incoming.close()
    answered = await Incoming(bob, ring).accept()
    async with asyncio.timeout(BACK_S):
        await outgoing.accepted()
    return outgoing, answered


class Frames:
    """Frames decoded over every video track a call's party got (a rejoin or a renegotiation adds some)."""

    def __init__(self, party: Call) -> None:
        self.party = party
        self.counters: dict[int, FrameCounter] = {}

    def total(self) -> int:
        peer = self.party.peer
        for track in peer.tracks if peer is not None else []:
            if track.kind == "video" and id(track) not in self.counters:
                self.counters[id(track)] = FrameCounter(track)
        return sum(c.count.frames for c in self.counters.values())

    async def more(self, n: int) -> None:
        """Waits for ``n`` frames more than now (bound it with ``asyncio.timeout``)."""
        seen = self.total()
        while self.total() < seen + n:  # noqa: ASYNC110 (polls the frame counters)
            await asyncio.sleep(0.2)

    async def close(self) -> None:
        for counter in self.counters.values():
            await counter.close()


@pytest.mark.parametrize(("lost", "count", "how", "redis_url"), [
    ("both", 2, "kill", "single"), ("one", 3, "kill", "single"), ("both", 2, "drain", "single"),
    pytest.param("one", 3, "kill", "cluster", marks=pytest.mark.redis_cluster)], indirect=["redis_url"])
async def test_a_call_through_the_sfu_goes_on_after_its_node_is_killed(
        make_api: Callable[..., Any], start_node: Callable[..., Any], redis: Any, tmp_path: Path,
        lost: str, count: int, how: str) -> None:
    """``both``: amy and bob on A, which dies; they come back on B (the only live node) and publish
    again there. ``one``: amy on A, bob on B (the cascade pulls each into the other's node); A dies,
    amy comes back where the API places her (B, or C: then B and C pull each other), bob stays.
    ``drain``: A is drained instead (``reconnect``): the call moves with its parties."""
    api = await make_api()
    nodes = list((await _nodes_on_api_key(api, start_node, redis, tmp_path, count, SWITCHBOARD_CASCADE_SECRET=SECRET,
                                          SWITCHBOARD_NODE_CALL_MEDIA="sfu",
                                          SWITCHBOARD_NODE_DRAIN_GRACE_S="30" if how == "drain" else "0")).items())
    base = str(api.client.make_url("")).rstrip("/")
    accounts = [await _login(base, api) for _ in range(2)]
    (url_a, node_a), (url_b, _) = nodes[0], nodes[1]
    clients: list[Any] = []
    frames: list[Frames] = []
    try:
        amy = await _client(base, accounts[0], url_a)
        bob = await _client(base, accounts[1], url_a if lost == "both" else url_b)
        clients += [amy, bob]
        calls = await _call(amy, bob)
        clients += calls
        assert {c.media for c in calls} == {"sfu"}
        for party in calls:
            await party.start([TestPattern()])
        frames = [Frames(c) for c in calls]
        async with asyncio.timeout(BACK_S):
            for each in frames:
                await each.more(5)  # each decodes the other's camera

        if how == "kill":
            _kill(node_a)
            await node_a.proc.wait()
        else:
            code, _, err = await switchboard(nodes[1][1], "node", "drain", node_a.node_id)
            assert code == 0, err
        moved = calls if lost == "both" else calls[:1]
        async with asyncio.timeout(BACK_S * 2):
            await asyncio.gather(*(c.rejoined.wait() for c in moved))
        async with asyncio.timeout(BACK_S * 2):
            for each in frames:
                await each.more(10)  # each decodes the other's camera again, from the live node(s)

        state = await redis.hgetall(call_key(calls[0].call_id))
        fields = {text(k): text(v) for k, v in state.items()}
        assert fields["state"] == "active"
        assert fields["caller_node"] == amy.hello.node and fields["callee_node"] == bob.hello.node
        assert node_a.node_id not in (amy.hello.node, bob.hello.node)
        assert [c.rejoins for c in calls] == ([1, 1] if lost == "both" else [1, 0])
        assert all(c.ended is None for c in calls)

        ended = bob.events("call.ended")
        await calls[0].close()  # amy hangs up on the live node: bob hears it, the records go
        async with asyncio.timeout(BACK_S):
            assert (await ended.next())["reason"] == "hangup"
        assert await redis.exists(user_call(amy.user_id), user_call(bob.user_id)) == 0
    finally:
        for each in frames:
            await each.close()
        for client in reversed(clients):
            await client.close()
        for account in accounts:
            await account.close()


async def test_a_call_whose_party_never_comes_back_ends_for_both_with_a_reason(
        make_api: Callable[..., Any], start_node: Callable[..., Any], redis: Any, tmp_path: Path) -> None:
    """amy on A, bob on B (peer to peer); A dies and amy's client is gone with it: once
    ``node.call_rejoin_s`` passes, bob's call ends with ``node_lost`` and Redis forgets the call."""
    api = await make_api()
    nodes = list((await _nodes_on_api_key(api, start_node, redis, tmp_path, 2,
                                          SWITCHBOARD_NODE_CALL_REJOIN_S="2")).items())
    base = str(api.client.make_url("")).rstrip("/")
    accounts = [await _login(base, api) for _ in range(2)]
    (url_a, node_a), (url_b, _) = nodes
    clients: list[Any] = []
    try:
        amy = await _client(base, accounts[0], url_a)
        bob = await _client(base, accounts[1], url_b)
        clients += [amy, bob]
        calls = await _call(amy, bob)
        clients += calls
        ended = bob.events("call.ended")

        _kill(node_a)
        await amy.close()  # amy's page died with her node: she never comes back
        async with asyncio.timeout(BACK_S * 4):
            event = await ended.next()
        assert event == {"type": "call.ended", "call_id": calls[1].call_id, "reason": "node_lost", "by": None}
        async with asyncio.timeout(BACK_S):
            assert (await calls[1].wait_ended())["reason"] == "node_lost"
        assert await redis.exists(user_call(amy.user_id), user_call(bob.user_id)) == 0
        assert text(await redis.hget(call_key(calls[1].call_id), "state")) == "ended"
        assert 0 < await redis.ttl(call_key(calls[1].call_id)) <= ENDED_KEEP_S  # late requests, reports
    finally:
        for client in reversed(clients):
            await client.close()
        for account in accounts:
            await account.close()


async def test_a_paid_call_whose_meter_node_is_killed_ends_for_both_and_bills_its_started_minute(
        make_api: Callable[..., Any], start_node: Callable[..., Any], redis: Any, tmp_path: Path) -> None:
    """A creator's paid call: the caller on A, the creator (who accepts, so B meters it) on B. B is
    killed: no node could go on holding and posting its minutes, so the call ends for both with
    ``node_lost``; the ending node's ``end`` has the API post the one started minute and void the rest."""
    api = await make_api(consume_events=True, payments=PaymentsSettings(hold_sweep_s=0.5))
    nodes = list((await _nodes_on_api_key(api, start_node, redis, tmp_path, 2)).items())
    base = str(api.client.make_url("")).rstrip("/")
    payer, creator = await api.user(), await api.user()
    status, body = await api.call("PUT", "/me/prices", creator, json={"call_price": PRICE})
    assert status == 200, body
    ledger: Ledger = api.app._subapps[0][PAYMENTS].ledger  # type: ignore[attr-defined]
    await ledger.deposit(f"test-seed:{payer.id}", uuid.UUID(payer.id), 10 * PRICE)
    accounts = [ApiClient(base), ApiClient(base)]
    (url_a, _), (url_b, node_b) = nodes
    clients: list[Any] = []
    try:
        for account, user in zip(accounts, (payer, creator), strict=True):
            await account.open()
            await account.login(user.email, user.password)
        amy = await _client(base, accounts[0], url_a)
        bob = await _client(base, accounts[1], url_b)
        clients += [amy, bob]
        calls = await _call(amy, bob)
        clients += calls
        assert text(await redis.hget(call_key(calls[0].call_id), "meter_node")) == node_b.node_id

        _kill(node_b)
        async with asyncio.timeout(BACK_S * 4):
            ended = [await c.wait_ended() for c in calls]
        assert [e["reason"] for e in ended] == ["node_lost", "node_lost"]
        assert await redis.exists(user_call(amy.user_id), user_call(bob.user_id)) == 0

        async with asyncio.timeout(BACK_S * 4):
            while True:  # the started minute posted, nothing else held
                wallet = await ledger.balance(uuid.UUID(payer.id))
                if (wallet.available, wallet.held) == (9 * PRICE, 0):
                    break
                await asyncio.sleep(0.2)
    finally:
        for client in reversed(clients):
            await client.close()
        for account in accounts:
            await account.close()


async def test_a_match_whose_peers_node_is_killed_ends_for_the_other_with_a_reason(
        start_node: Callable[..., Any], token: Callable[..., str], redis: Any, matchmaker: None) -> None:  # noqa: F811
    """A random match (a real ``switchboard matchmaker``), kim on A, lou on B: A is killed and kim never
    comes back (test_match_loss.py: a party that does). lou is not left in a silent half-match: once the
    registry forgot A and ``node.call_rejoin_s`` passed, lou gets ``match.ended`` with ``node_lost`` and
    the pair leaves Redis."""
    a, b = await asyncio.gather(start_node(SWITCHBOARD_NODE_CALL_REJOIN_S="2"),
                                start_node(SWITCHBOARD_NODE_CALL_REJOIN_S="2"))
    await registered_count(redis, 2)
    async with aiohttp.ClientSession() as http:
        kim, lou = await a.connect(http, token("kim")), await b.connect(http, token("lou"))
        ticket = {"country": "FR", "age": 30}
        await kim.ok("queue.join", ticket=ticket)
        await lou.ok("queue.join", ticket=ticket)
        sid = (await kim.expect("match.found"))["session_id"]
        await lou.expect("match.found", session_id=sid)

        _kill(a)
        await a.proc.wait()
        async with asyncio.timeout(BACK_S * 4):
            while True:
                try:
                    ended = await lou.expect("match.ended", session_id=sid)
                    break
                except TimeoutError:  # one socket read's bound: nothing came yet
                    continue
        assert ended["reason"] == "node_lost"
        assert await redis.exists(match_pair("kim"), match_pair("lou")) == 0
        await lou.ok("ping")  # lou's socket lives on, free to queue again
