"""SDK round trips on 1:1 calls and random-chat matches against a real ``switchboard up``."""

from __future__ import annotations

import asyncio

import pytest

from switchboard_client import (
    ApiClient,
    ClosedError,
    NodeClient,
    RandomChat,
    invite,
    live_calls,
    next_incoming,
    tap_call,
)
from switchboard_client.media import FrameCounter, TestPattern
from tests.client.conftest import SignUp
from tests.e2e.browser import Up

pytestmark = pytest.mark.slow


async def test_call_answer_media_and_chat(up: Up, sign_up: SignUp) -> None:
    alice, bob = await sign_up("caller"), await sign_up("callee")
    async with (NodeClient(up.base, alice.token_source()) as a_node,
                NodeClient(up.base, bob.token_source()) as b_node):
        async with asyncio.timeout(60):
            ringing = b_node.events("call.incoming")
            outgoing = await invite(a_node, bob.user_id)
            incoming = await next_incoming(ringing, b_node)
            assert incoming.caller == alice.user_id and incoming.call_id == outgoing.call_id
            answered = await incoming.accept()
            await outgoing.accepted()
            assert outgoing.media == answered.media == "p2p"  # friends' calls: node.call_media
            await answered.start([TestPattern()])
            await outgoing.start([TestPattern()])
            seen_by_caller = FrameCounter(await outgoing.track("video"))
            seen_by_callee = FrameCounter(await answered.track("video"))
            await seen_by_caller.first_frame()
            await seen_by_callee.first_frame()

            await outgoing.chat("hi bob")
            line = await answered.chats.get()
            assert line["from"] == alice.user_id and line["text"] == "hi bob"

            await seen_by_caller.close()
            await seen_by_callee.close()
            await outgoing.close()
            ended = await answered.wait_ended()
            assert ended["reason"] == "hangup" and ended["by"] == alice.user_id
        await outgoing.close()  # idempotent
        with pytest.raises(ClosedError):
            await answered.chat("too late")
        await answered.close()


async def test_random_chat_match_media_and_chat(up: Up, sign_up: SignUp) -> None:
    alice, bob = await sign_up("random-a"), await sign_up("random-b")
    async with (NodeClient(up.base, alice.token_source()) as a_node,
                NodeClient(up.base, bob.token_source()) as b_node,
                RandomChat(a_node, {"country": "FR", "age": 30}) as a_queue,
                RandomChat(b_node, {"country": "FR", "age": 31}) as b_queue):
        async with asyncio.timeout(60):
            a_match, b_match = await asyncio.gather(a_queue.match(), b_queue.match())
            assert a_match.call_id == b_match.call_id
            assert {a_match.peer_user, b_match.peer_user} == {alice.user_id, bob.user_id}
            assert a_match.media == "sfu"  # random chat: node.match_media
            await asyncio.gather(a_match.start([TestPattern()]), b_match.start([TestPattern()]))
            a_sees = FrameCounter(await a_match.track("video"))
            b_sees = FrameCounter(await b_match.track("video"))
            await a_sees.first_frame()
            await b_sees.first_frame()

            await b_match.chat("bonjour")
            assert (await a_match.chats.get())["text"] == "bonjour"
            await a_sees.close()
            await b_sees.close()

            await b_queue.close()  # bob leaves: alice's match ends
            assert (await a_match.wait_ended())["reason"] == "leave"
    with pytest.raises(ClosedError):
        await a_queue.match()


async def test_socket_resumes_after_a_drop(up: Up, sign_up: SignUp) -> None:
    alice = await sign_up("resumer")
    async with NodeClient(up.base, alice.token_source()) as node:
        first = node.hello
        assert not first.resumed
        hellos = node.events("hello")
        ws = node._ws
        assert ws is not None
        async with asyncio.timeout(30):
            ws._response.connection.transport.abort()  # type: ignore[union-attr]  # the network drops
            resumed = await hellos.wait_for("hello")
            assert resumed["resumed"] is True and resumed["session_id"] == first.session_id
            assert await node.request("ping") == {"pong": True}
        assert node.reconnects >= 1
    await node.close()
    with pytest.raises(ClosedError):
        node.events()


async def test_moderator_taps_a_match_unseen(up: Up, sign_up: SignUp, moderator: ApiClient) -> None:
    alice, bob = await sign_up("tapped-a"), await sign_up("tapped-b")
    async with (NodeClient(up.base, alice.token_source()) as a_node,
                NodeClient(up.base, bob.token_source()) as b_node,
                NodeClient(up.base, moderator.token_source("moderation", "hidden")) as mod_node,
                RandomChat(a_node, {"country": "FR", "age": 30}) as a_queue,
                RandomChat(b_node, {"country": "FR", "age": 31}) as b_queue):
        async with asyncio.timeout(60):
            a_match, b_match = await asyncio.gather(a_queue.match(), b_queue.match())
            await asyncio.gather(a_match.start([TestPattern()]), b_match.start([TestPattern()]))
            a_sees = FrameCounter(await a_match.track("video"))
            await a_sees.first_frame()
            alice_hears = a_node.events()  # everything alice's socket gets from now on

            listed = {c["call_id"]: c for c in await live_calls(mod_node)}
            assert set(listed[a_match.call_id]["users"]) == {alice.user_id, bob.user_id}
            tap = await tap_call(mod_node, a_match.call_id)
            assert tap.info["kind"] == "match" and tap.info["media"] == "sfu"
            tapped = FrameCounter(await tap.track("video"))
            assert (await tapped.first_frame()).width == 160
            await tapped.close()
            await tap.close()
            await tap.close()  # idempotent

            await b_match.chat("still just us?")
            assert (await a_match.chats.get())["text"] == "still just us?"
            await a_sees.close()
        seen = [event["type"] for event in alice_hears.take(lambda event: True)]
        assert seen == ["call.chat"], seen  # no offer, no roster, nothing about the tap
