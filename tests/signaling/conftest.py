"""A node app on the session's real Redis, tokens from an in-memory Ed25519 key, and a small WS client.

The SFU and the queue are fakes at their Protocol boundaries (tests/signaling/fakes.py) unless a
test passes its own openers; ``test_show_media.py`` uses the real ``sfu.worker.Worker``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from signaling.node import NodeDeps, install_node
from switchboard.health import Readiness
from switchboard.ids import RoomId, UserId
from switchboard.keyspace import friends
from switchboard.settings import NodeSettings
from switchboard.tokens import Grants, TokenSigner, TokenVerifier
from switchboard.wire import Codec, decode, encode
from tests.signaling.fakes import FakeMedia, FakeTickets, media_opener

STEP_S = 5.0
"""Upper bound for one expected frame to arrive (tests never assert on timing, only bound it)."""

SETTINGS = NodeSettings(ws_rate_per_s=200, ws_rate_burst=200, ws_abuse_limit=20, call_ring_timeout_s=30,
                        resume_window_s=15, chat_rate_per_s=1, chat_burst=3,
                        lag_shed_ms=600_000.0)  # no shedding on a late loop unless a test turns it on
"""Node settings for tests. This machine's load would otherwise shed connects at random
(tests/signaling/test_admission.py turns lag shedding on)."""


@pytest.fixture(scope="session")
def token_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def signer(token_key: Ed25519PrivateKey) -> TokenSigner:
    return TokenSigner(token_key, issuer="switchboard", ttl_s=300)


@pytest.fixture
def token(signer: TokenSigner) -> Callable[..., str]:
    def make(user: str, room: str | None = None, **grants: bool) -> str:
        """A token for ``user``; its account counts as verified unless ``verified=False`` is given."""
        grants.setdefault("verified", True)
        return signer.sign(Grants(sub=UserId(user), room=RoomId(room) if room else None, **grants))

    return make


async def befriend(redis: Any, a: str, *others: str) -> None:
    """``a`` and each of ``others`` follow each other (what the control API mirrors into Redis)."""
    for b in others:
        await redis.sadd(friends(a), b)
        await redis.sadd(friends(b), a)


class Peer:
    """One client socket: send messages, wait for a given type, make requests with ids."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, codec: Codec) -> None:
        self.ws = ws
        self.codec = codec
        self.seen: list[dict[str, Any]] = []
        self._next = 0

    async def send(self, message: dict[str, Any]) -> None:
        frame = encode(message, self.codec)
        await (self.ws.send_str(frame) if isinstance(frame, str) else self.ws.send_bytes(frame))

    async def recv(self) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=STEP_S)
        if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
            raise ConnectionError(f"socket ended: {msg.type} {msg.data} {msg.extra}")
        return decode(msg.data, self.codec, max_bytes=1 << 24)

    async def expect(self, kind: str, **fields: Any) -> dict[str, Any]:
        """The first buffered or arriving message of ``kind`` whose fields match."""
        def match(m: dict[str, Any]) -> bool:
            return m["type"] == kind and all(m.get(k) == v for k, v in fields.items())

        for i, m in enumerate(self.seen):
            if match(m):
                return self.seen.pop(i)
        async with asyncio.timeout(STEP_S):
            while True:
                m = await self.recv()
                if match(m):
                    return m
                self.seen.append(m)

    async def request(self, kind: str, **body: Any) -> dict[str, Any]:
        """Sends a request with an id; returns its reply or error frame."""
        self._next += 1
        rid = f"r{self._next}"
        await self.send({"type": kind, "id": rid, **body})
        async with asyncio.timeout(STEP_S):
            while True:
                m = await self.recv()
                if m.get("ref") == rid and m["type"] in ("reply", "error"):
                    return m
                self.seen.append(m)

    async def ok(self, kind: str, **body: Any) -> dict[str, Any]:
        reply = await self.request(kind, **body)
        assert reply["type"] == "reply", reply
        return reply

    async def closed(self) -> int | None:
        """Reads until the server closes; returns the close code of the server's close frame (what a
        browser's CloseEvent reports). Not ``ws.close_code``: aiohttp's client answers the close frame
        and, when the server has already ended the connection, overwrites the code with 1006."""
        async with asyncio.timeout(STEP_S):
            while True:
                msg = await self.ws.receive()
                if msg.type is aiohttp.WSMsgType.CLOSE:
                    return int(msg.data)
                if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                    return self.ws.close_code
                if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    self.seen.append(decode(msg.data, self.codec, max_bytes=1 << 24))


@dataclasses.dataclass
class Node:
    client: TestClient
    media: FakeMedia
    tickets: FakeTickets
    app: web.Application

    async def connect(self, token: str | None, *, msgpack: bool = False, resume: str | None = None,
                      hello: bool = True) -> Peer:
        params = {k: v for k, v in (("token", token), ("resume", resume)) if v}
        protocols = ("switchboard.msgpack",) if msgpack else ()
        ws = await self.client.ws_connect("/ws", params=params, protocols=protocols)
        peer = Peer(ws, Codec.MSGPACK if msgpack else Codec.JSON)
        if hello and token:
            peer.hello = await peer.expect("hello")  # type: ignore[attr-defined]
        return peer


NodeFactory = Callable[..., Awaitable[Node]]


@pytest.fixture
async def make_node(redis_url: str, redis: Any, token_key: Ed25519PrivateKey,
                    tmp_path: Any) -> AsyncIterator[NodeFactory]:
    clients: list[TestClient] = []

    async def make(settings: NodeSettings = SETTINGS, open_media: Any = None, **kw: Any) -> Node:
        media, tickets = FakeMedia(), FakeTickets(redis)
        app = web.Application()
        install_node(app, NodeDeps(
            settings, redis_url, Readiness(), tmp_path,
            verifier=TokenVerifier(token_key.public_key(), issuer="switchboard"),
            open_media=open_media or media_opener(media), open_tickets=lambda r: tickets, **kw,
        ))
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return Node(client, media, tickets, app)

    yield make
    for client in clients:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.close(), 10)


@pytest.fixture
async def node(make_node: NodeFactory) -> Node:
    return await make_node()
