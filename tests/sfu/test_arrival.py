"""The load generator's arrival clock (``sfu.aiortc_private.ArrivalClock``) gives the kernel's receive
time of the datagram being handled, not the time the event loop got round to it, on real UDP sockets
on 127.0.0.1, under uvloop (the load generator's loop) and asyncio's own."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable, Coroutine
from types import SimpleNamespace
from typing import Any

import pytest
import uvloop

from sfu import aiortc_private

FANOUT_PATHS = ()
"""No Worker or WorkerPool here: the fan-out setting does not reach these tests; one run (tests/conftest.py)."""

BLOCK_S = 0.05
"""How long the loop is kept from reading, after the datagrams were sent."""


class Stamped(asyncio.DatagramProtocol):
    """Each datagram with the clock's stamp and ``time.time()``, both taken in ``datagram_received``."""

    def __init__(self) -> None:
        self.clock: aiortc_private.ArrivalClock | None = None
        self.got: list[tuple[bytes, float | None, float]] = []
        self.arrived = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.clock = aiortc_private.ArrivalClock(transport)  # a fresh socket: the first ask turns stamping on

    def datagram_received(self, data: bytes, addr: Any) -> None:
        assert self.clock is not None
        self.got.append((data, self.clock.stamp(), time.time()))
        self.arrived.set()


async def _blocked_read() -> tuple[Stamped, list[float]]:
    """Three datagrams sent 2 ms apart while the loop is blocked, then read: their stamps and send times."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(Stamped, local_addr=("127.0.0.1", 0))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        # The kernel turns receive stamps on a moment after the first socket asks (when no other socket
        # on the box has them on): until then a datagram has none, and the clock says so (None).
        async with asyncio.timeout(10):
            while not protocol.got or protocol.got[-1][1] is None:
                sender.sendto(b"warm-up", transport.get_extra_info("sockname"))
                await asyncio.sleep(0.01)
        assert protocol.clock is not None
        protocol.got.clear()
        protocol.clock.kernel = protocol.clock.fallback = 0
        sent: list[float] = []
        for i in range(3):
            sent.append(time.time())
            sender.sendto(b"datagram %d" % i, transport.get_extra_info("sockname"))
            time.sleep(0.002)  # noqa: ASYNC251 (the loop blocked: the datagrams wait in the socket)
        time.sleep(BLOCK_S)  # noqa: ASYNC251 (on purpose: the loop cannot read, the datagrams wait in the socket)
        async with asyncio.timeout(10):
            while len(protocol.got) < 3:
                protocol.arrived.clear()
                await protocol.arrived.wait()
        return protocol, sent
    finally:
        sender.close()
        transport.close()


def _check(protocol: Stamped, sent: list[float]) -> None:
    assert protocol.clock is not None and protocol.clock.available
    assert [d for d, _, _ in protocol.got] == [b"datagram 0", b"datagram 1", b"datagram 2"]
    stamps = [s for _, s, _ in protocol.got]
    assert all(s is not None for s in stamps), "every datagram stamped by the kernel"
    assert protocol.clock.kernel == 3 and protocol.clock.fallback == 0
    for (_, stamp, read_at), sent_at, next_sent in zip(protocol.got, sent, [*sent[1:], sent[-1] + 1], strict=True):
        assert stamp is not None
        # the kernel's time: after it was sent, before the next was, and before the blocked loop read it
        assert sent_at <= stamp < next_sent
        assert stamp < read_at - BLOCK_S / 2
    assert stamps == sorted(stamps) and len(set(stamps)) == 3, "each datagram its own stamp, not the last one's"


Read = tuple[Stamped, list[float]]


@pytest.mark.parametrize("runner", [uvloop.run, asyncio.run], ids=["uvloop", "asyncio"])
def test_the_stamp_is_the_kernels_receive_time_not_the_read(
        runner: Callable[[Coroutine[Any, Any, Read]], Read]) -> None:
    _check(*runner(_blocked_read()))


def test_a_socket_that_received_nothing_has_no_stamp_yet_and_is_asked_again() -> None:
    """The kernel answers ENOENT while no datagram was read: no stamp, and the socket stays asked."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        rx.bind(("127.0.0.1", 0))
        clock = aiortc_private.ArrivalClock(SimpleNamespace(get_extra_info=lambda name: rx))
        assert clock.stamp() is None and (clock.kernel, clock.fallback) == (0, 1)
        assert clock.available
    finally:
        rx.close()


def test_without_a_socket_or_on_one_that_has_no_stamps_the_caller_falls_back() -> None:
    """No socket (a transport that has none): no stamp. A descriptor the ioctl means nothing to (a pipe,
    ENOTTY): no stamp, and the kernel is not asked again."""
    none = aiortc_private.ArrivalClock(SimpleNamespace(get_extra_info=lambda name: None))
    assert not none.available and none.stamp() is None and none.fallback == 1
    read, write = os.pipe()
    try:
        fd = SimpleNamespace(fileno=lambda: read)
        pipe = aiortc_private.ArrivalClock(SimpleNamespace(get_extra_info=lambda name: fd))
        assert not pipe.available
        assert pipe.stamp() is None and pipe.stamp() is None
        assert (pipe.kernel, pipe.fallback) == (0, 2)
    finally:
        os.close(read)
        os.close(write)
