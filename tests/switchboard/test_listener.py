"""The gated listener on a real loopback socket, with a stand-in protocol for aiohttp's server: what
it starts, what it queues, and what it refuses (queue full at once, a wait too long later)."""

from __future__ import annotations

import asyncio
import socket

from switchboard.listener import GatedListener, GateLimits, Handshakes

REQUEST = b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n"
STEP_S = 30.0


class Heard(asyncio.Protocol):
    """Stands in for aiohttp's request handler: records the first bytes of each connection."""

    def __init__(self, heard: asyncio.Queue[bytes]) -> None:
        self._heard = heard

    def data_received(self, data: bytes) -> None:
        self._heard.put_nowait(data)


async def _answer(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(REQUEST)
    try:
        async with asyncio.timeout(STEP_S):
            return await reader.read()  # until the listener closes
    finally:
        writer.close()


async def _listener(handshakes: Handshakes, limits: GateLimits,
                    heard: asyncio.Queue[bytes]) -> tuple[GatedListener, int]:
    sock = socket.create_server(("127.0.0.1", 0))
    listener = GatedListener(sock, lambda: Heard(heard), handshakes, limits)
    await listener.start_serving()
    return listener, sock.getsockname()[1]


async def test_the_gate_queues_what_it_has_no_room_for_and_refuses_the_rest_with_a_503() -> None:
    handshakes, heard = Handshakes(limit=1), asyncio.Queue[bytes]()
    handshakes.upgrading = 1  # the one slot is taken
    listener, port = await _listener(handshakes, GateLimits(per_pass=4, queue=2, wait_s=0.3, retry_after_s=3),
                                     heard)
    try:
        answers = await asyncio.gather(*(_answer(port) for _ in range(3)))  # one refused at once, two after 0.3 s
        for answer in answers:
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 503 ") and b"\r\nRetry-After: 3" in head, answer
            assert b'"code": "overloaded"' in body
        assert listener.refused == 3 and heard.empty()

        handshakes.finished()  # the slot frees: the next connect is handed to the server
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(REQUEST)
        async with asyncio.timeout(STEP_S):
            assert await heard.get() == REQUEST
        assert handshakes.room(0.0) == 0  # started, not yet claimed by the gateway
        handshakes.claim()
        assert handshakes.room(0.0) == 1
        writer.close()
    finally:
        listener.close()
        listener.close()  # twice is safe
    assert not listener.is_serving() and listener.sockets == ()


async def test_the_gate_starts_connects_no_faster_than_its_rate() -> None:
    heard = asyncio.Queue[bytes]()
    limits = GateLimits(per_pass=4, queue=10, wait_s=0.3, retry_after_s=1, rate_per_s=0.001)  # one token, then none
    listener, port = await _listener(Handshakes(limit=10), limits, heard)
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(REQUEST)
        async with asyncio.timeout(STEP_S):
            assert await heard.get() == REQUEST  # the bucket's one token
        answer = await _answer(port)  # room for a handshake, but no token: it waits, then the 503
        assert answer.startswith(b"HTTP/1.1 503 ") and listener.refused == 1 and heard.empty()
        writer.close()
    finally:
        listener.close()
