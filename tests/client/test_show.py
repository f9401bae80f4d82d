"""SDK round trips on a show against a real ``switchboard up``: publish, view, tap, roster, chat."""

from __future__ import annotations

import asyncio

import pytest

from switchboard_client import ApiClient, ClosedError, NodeClient, publish_show, tap_show, view_show
from switchboard_client.media import FrameCounter, TestPattern
from tests.client.conftest import SignUp
from tests.e2e.browser import Up

pytestmark = pytest.mark.slow


async def test_publish_view_tap_and_chat(up: Up, sign_up: SignUp, moderator: ApiClient) -> None:
    alice, bob = await sign_up("alice"), await sign_up("bob")
    room = (await alice.create_room("sdk test")).room
    async with (NodeClient(up.base, alice.token_source(room, "broadcaster")) as host_node,
                NodeClient(up.base, bob.token_source(room)) as bob_node,
                NodeClient(up.base, moderator.token_source(room, "hidden")) as mod_node):
        async with asyncio.timeout(60):
            show = await publish_show(host_node, room, [TestPattern()])
            host_chat = show.events("show.chat")
            viewing = await view_show(bob_node, room)
            tap = await tap_show(mod_node, room)
            assert not viewing.hidden and tap.hidden

            watched = FrameCounter(await viewing.track("video"))
            tapped = FrameCounter(await tap.track("video"))
            assert (await watched.first_frame()).width == 160
            assert (await tapped.first_frame()).frames >= 1

            roster = await show.roster()
            assert roster["roster"] == [alice.user_id, bob.user_id] or set(roster["roster"]) == {
                alice.user_id, bob.user_id}
            assert moderator.user_id not in roster["roster"] and roster["viewers"] == 1

            line = await viewing.chat("hello from the SDK")
            said = await host_chat.wait_for("show.chat")
            assert said["from"] == bob.user_id and said["text"] == "hello from the SDK" and said["id"] == line

        await watched.close()
        await tapped.close()
        await tap.close()
        await tap.close()  # idempotent
        with pytest.raises(ClosedError):
            await tap.chat("after leaving")
        await viewing.close()
        await show.close()
    with pytest.raises(ClosedError):
        await host_node.request("ping")


async def test_the_host_watches_its_own_show_from_a_second_socket(up: Up, sign_up: SignUp) -> None:
    """A broadcaster checking the stream on a phone: another session of the owner's own account is a
    viewer like any other and gets the video (only the publishing session never gets its own back)."""
    alice = await sign_up("alice")
    room = (await alice.create_room("watching myself")).room
    async with (NodeClient(up.base, alice.token_source(room, "broadcaster")) as host_node,
                NodeClient(up.base, alice.token_source(room)) as phone_node):
        async with asyncio.timeout(60):
            show = await publish_show(host_node, room, [TestPattern()])
            viewing = await view_show(phone_node, room)
            watched = FrameCounter(await viewing.track("video"))
            assert (await watched.first_frame()).width == 160
            roster = await show.roster()
            assert roster["roster"] == [alice.user_id] and roster["viewers"] == 0
        await watched.close()
        await viewing.close()
        await show.close()


async def test_a_viewer_whose_peer_the_node_closed_subscribes_again(up: Up, sign_up: SignUp) -> None:
    """The node closes a viewer's peer connection when it dies (or when a worker sheds it) and says so
    with ``show.peer_closed``; the SDK subscribes again on the same session, as the watch page does,
    and the new peer connection gets the video."""
    alice, bob = await sign_up("alice"), await sign_up("bob")
    room = (await alice.create_room("a peer dies")).room
    async with (NodeClient(up.base, alice.token_source(room, "broadcaster")) as host_node,
                NodeClient(up.base, bob.token_source(room)) as bob_node):
        async with asyncio.timeout(60):
            show = await publish_show(host_node, room, [TestPattern()])
            viewing = await view_show(bob_node, room)
            told = viewing.events("show.peer_closed")
            first = FrameCounter(await viewing.track("video"))
            assert (await first.first_frame()).width == 160
            old_peer, session = viewing.peer, bob_node.hello.session_id
            await old_peer.pc.close()  # the connection dies under the SDK (as a lost network path would)

            closed = await told.wait_for("show.peer_closed")
            assert closed["room"] == room and closed["reason"] == "closed"
            await viewing.rejoined.wait()
            assert viewing.peer is not old_peer and viewing.rejoins == 1
            again = FrameCounter(await viewing.track("video"))
            assert (await again.first_frame()).width == 160
            assert bob_node.hello.session_id == session  # the same session: no reconnect
            roster = await show.roster()
            assert roster["viewers"] == 1
        await first.close()
        await again.close()
        await viewing.close()
        await show.close()
