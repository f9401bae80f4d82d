"""/ws: authentication (4001), frames and error frames, both codecs, limits and 1008 after abuse."""

from __future__ import annotations

import json
from collections.abc import Callable

import aiohttp

from signaling.node import NODE_HUB
from switchboard.ids import UserId
from switchboard.tokens import Grants, TokenSigner
from tests.signaling.conftest import Node


async def test_query_token_gets_hello_and_ping_reply(node: Node, token: Callable[..., str]) -> None:
    peer = await node.connect(token("alice"))
    assert peer.hello["user_id"] == "alice" and peer.hello["resumed"] is False  # type: ignore[attr-defined]
    reply = await peer.ok("ping")
    assert reply["pong"] is True


async def test_first_message_auth_gets_reply_then_hello(node: Node, token: Callable[..., str]) -> None:
    peer = await node.connect(None)
    await peer.send({"type": "auth", "id": 1, "token": token("bob")})
    reply = await peer.expect("reply", ref=1)
    hello = await peer.expect("hello")
    assert hello["user_id"] == "bob" and reply["session_id"] == hello["session_id"]


async def test_bad_expired_missing_tokens_close_4001(node: Node, signer: TokenSigner) -> None:
    expired = signer.sign(Grants(sub=UserId("eve")), ttl_s=1, now=1_000_000)
    for bad in ("not-a-jwt", expired):
        peer = await node.connect(bad, hello=False)
        error = await peer.expect("error")
        assert error["code"] == "unauthorized"
        assert await peer.closed() == 4001
    peer = await node.connect(None)
    await peer.send({"type": "ping", "id": 7})
    error = await peer.expect("error")
    assert error["code"] == "unauthorized" and error["ref"] == 7
    assert await peer.closed() == 4001


async def test_token_signed_by_another_key_is_refused(node: Node) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    forged = TokenSigner(Ed25519PrivateKey.generate(), issuer="switchboard", ttl_s=60).sign(Grants(sub=UserId("x")))
    peer = await node.connect(forged, hello=False)
    assert (await peer.expect("error"))["code"] == "unauthorized"
    assert await peer.closed() == 4001


async def test_msgpack_subprotocol_gets_binary_frames(node: Node, token: Callable[..., str]) -> None:
    peer = await node.connect(token("carol"), msgpack=True)
    assert peer.ws.protocol == "switchboard.msgpack"
    await peer.send({"type": "ping", "id": "m1"})
    msg = await peer.ws.receive(timeout=5)
    assert msg.type is aiohttp.WSMsgType.BINARY
    await peer.ws.send_str('{"type": "ping"}')  # text on a msgpack socket is a bad frame, not a crash
    assert (await peer.expect("error"))["code"] == "bad_frame"


async def test_bad_input_gets_named_errors_and_socket_survives(node: Node, token: Callable[..., str]) -> None:
    peer = await node.connect(token("dave"))
    cases = [
        ("{nope", "bad_frame"),
        ("[1, 2]", "bad_frame"),
        ('{"id": 3}', "bad_frame"),
        ('{"type": "warp.drive", "id": 4}', "unknown_type"),
        ('{"type": "call.invite", "id": 5}', "bad_message"),
        ('{"type": "call.invite", "id": 6, "to": 12}', "bad_message"),
        ('{"type": "ping", "id": {"x": 1}}', "bad_message"),
        (json.dumps({"type": "ping", "pad": "x" * 70_000}), "too_large"),
    ]
    for frame, code in cases:
        await peer.ws.send_str(frame)
        error = await peer.expect("error")
        assert error["code"] == code, (frame[:40], error)
        assert error["message"]
    assert (await peer.ok("ping"))["pong"] is True


async def test_repeated_abuse_closes_1008(make_node: Callable[..., object], token: Callable[..., str]) -> None:
    from tests.signaling.conftest import SETTINGS

    node: Node = await make_node(settings=SETTINGS.__class__(ws_abuse_limit=5))
    peer = await node.connect(token("mallory"))
    for _ in range(10):
        await peer.ws.send_str("garbage")
    assert await peer.closed() == 1008
    assert sum(1 for m in peer.seen if m["type"] == "error") >= 5


async def test_message_rate_limit(make_node: Callable[..., object], token: Callable[..., str]) -> None:
    from tests.signaling.conftest import SETTINGS

    node: Node = await make_node(settings=SETTINGS.__class__(ws_rate_per_s=1, ws_rate_burst=2, ws_abuse_limit=50))
    peer = await node.connect(token("fast"))
    for i in range(6):
        await peer.send({"type": "ping", "id": i})
    codes = [(await peer.expect("error"))["code"] for _ in range(3)]
    assert codes == ["rate_limited"] * 3


async def test_slow_reader_is_dropped_with_bounded_queue(make_node: Callable[..., object],
                                                         token: Callable[..., str]) -> None:
    from tests.signaling.conftest import SETTINGS

    node: Node = await make_node(settings=SETTINGS.__class__(ws_send_queue=4))
    peer = await node.connect(token("slow"))
    sessions = node.app[NODE_HUB].sessions(UserId("slow"))
    (session,) = sessions
    # A reader that reads nothing: frames go straight to the socket until the kernel's buffers and the
    # transport's are full; from then on they queue, and the queue's bound drops the socket.
    filler = "x" * 32_000
    for i in range(5_000):
        session.send({"type": "pong", "n": i, "filler": filler})
        if not session.attached:
            break
    assert not session.attached
    assert await peer.closed() == 1013

