"""Sealed pipes (between nodes): genuine media passes over real UDP; forged or altered datagrams,
even from the far end's own address, are dropped and counted; so are genuine ones replayed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sfu.pipe import PipeConsumer, PipeTransport
from sfu.pipe_seal import FROM_EXPORTER, SEAL_BYTES, WINDOW, ReplayWindow, Seal
from sfu.producer import Codec, KeyframeRequester, Producer
from sfu.rtp import HEADER
from sfu.types import PeerId

FANOUT_PATHS = ()
"""No Worker or WorkerPool here: the fan-out setting does not reach these tests; one run (tests/conftest.py)."""

SECRET = b"0123456789abcdef-shared-by-both-nodes"
STEP_S = 5.0


async def until(done: Callable[[], bool]) -> None:
    """Waits (bounded) for ``done``: datagrams arrive on the loop's own schedule."""
    async with asyncio.timeout(STEP_S):
        while True:
            if done():
                return
            await asyncio.sleep(0.01)


def producer(ssrc: int = 0x1234) -> Producer:
    return Producer("p1", PeerId("pub"), Codec("video", "video/VP8", 90000, 96), ssrc,
                    KeyframeRequester(lambda: None, 0.5, lambda *a: None))


@dataclass
class SealedPair:
    """Two sealed pipe ends over real UDP on 127.0.0.1, the origin exporting ``source``, five media
    packets already through to the edge's producer ``far``."""

    origin: PipeTransport
    edge: PipeTransport
    source: Producer
    far: Producer
    """The edge's producer of ``source``."""
    consumer: PipeConsumer
    """The origin's export of ``source`` (``forward`` sends media down the pipe)."""
    wire: list[bytes]
    """Every datagram the origin sent (what an eavesdropper on the path sees)."""
    echoes: list[bytes]
    """Every datagram the edge sent."""


@pytest.fixture
async def sealed() -> AsyncIterator[SealedPair]:
    source, imported = producer(), []
    origin = PipeTransport("p", new_producer=lambda *a: producer(), on_producer=lambda t, p: None,  # type: ignore[misc]
                           on_producer_closed=lambda t, p: None, seal=Seal(SECRET))
    edge = PipeTransport("p", new_producer=lambda t, c, s, i: producer(s),
                         on_producer=lambda t, p: imported.append(p), on_producer_closed=lambda t, p: None,
                         seal=Seal(SECRET))
    try:
        origin_port, edge_port = await origin.open(), await edge.open()
        wire, echoes = _tap(origin), _tap(edge)
        origin.connect(edge_port, export=True, host="127.0.0.1")
        edge.connect(origin_port, export=False, host="127.0.0.1")
        origin.export(source)  # announces the track: the edge makes its producer
        await until(lambda: bool(imported))
        far = imported[0]
        consumer = origin.exported[source.ssrc]
        for seq in range(5):
            consumer.forward(seq, seq * 3000, 0, b"\x10\x00\x00payload")
        await until(lambda: far.packets_received >= 5)
        yield SealedPair(origin, edge, source, far, consumer, wire, echoes)
    finally:
        origin.close()
        edge.close()


async def test_a_sealed_pipe_carries_media_and_drops_forged_rtp(sealed: SealedPair) -> None:
    edge, source, far = sealed.edge, sealed.source, sealed.far
    # A stranger who spoofs the origin's address but lacks the secret: dropped, counted.
    forged = HEADER.pack(0x80, 96, 99, 1, source.ssrc) + b"evil"
    edge.datagram_received(forged, edge.remote)
    edge.datagram_received(Seal(b"another-secret-of-16-bytes").for_pipe("p").seal(forged, FROM_EXPORTER | 99),
                           edge.remote)
    edge.datagram_received(Seal(SECRET).for_pipe("another pipe").seal(forged, FROM_EXPORTER | 99), edge.remote)
    genuine = Seal(SECRET).for_pipe("p").seal(forged, FROM_EXPORTER | 99)
    edge.datagram_received(genuine[:-1] + bytes([genuine[-1] ^ 1]), edge.remote)  # altered in flight
    assert edge.forged == 4 and far.packets_received == 5
    assert sealed.origin.forged == 0 and edge.malformed == 0 and edge.replayed == 0


async def test_a_sealed_pipe_drops_a_replayed_genuine_datagram(sealed: SealedPair) -> None:
    edge, far = sealed.edge, sealed.far
    # The genuine datagrams sent again: each is dropped and counted, as a forged one.
    replayed = list(sealed.wire)
    for datagram in replayed:
        edge.datagram_received(datagram, edge.remote)
    assert edge.replayed == len(replayed) == edge.forged and far.packets_received == 5
    # A datagram the edge itself sent (its keepalive), reflected back to it: dropped too.
    edge.tick()
    edge.datagram_received(sealed.echoes[-1], edge.remote)
    assert edge.replayed == len(replayed) + 1
    # The media goes on.
    sealed.consumer.forward(5, 5 * 3000, 0, b"\x10\x00\x00payload")
    await until(lambda: far.packets_received >= 6)
    assert edge.malformed == 0


def _tap(pipe: PipeTransport) -> list[bytes]:
    """Every datagram ``pipe`` sends from now on, as it leaves its socket."""
    assert pipe._transport is not None
    got: list[bytes] = []
    real = pipe._transport.sendto

    def sendto(data: bytes, addr: Any = None) -> None:
        got.append(data)
        real(data, addr)

    pipe._transport.sendto = sendto  # type: ignore[method-assign]
    return got


def test_a_seal_needs_a_real_secret() -> None:
    with pytest.raises(ValueError):
        Seal(b"short")


@given(st.binary(max_size=200), st.integers(0, 2**64 - 1))
def test_only_sealed_datagrams_open(data: bytes, counter: int) -> None:
    seal = Seal(SECRET).for_pipe("p")
    opened = seal.open(seal.seal(data, counter))
    assert (opened == (data, counter)) if data else (opened is None)  # an empty datagram is never sent
    assert seal.open(data) is None  # bytes without the key's tag (a 2**-80 chance to guess one)
    assert Seal(SECRET + b"x").for_pipe("p").open(seal.seal(data, counter)) is None
    assert Seal(SECRET).for_pipe("q").open(seal.seal(data, counter)) is None  # another pipe's
    assert len(seal.seal(data, counter)) == len(data) + SEAL_BYTES


@given(st.lists(st.integers(0, 3 * WINDOW), max_size=300))
def test_a_replay_window_opens_each_counter_once(counters: list[int]) -> None:
    window, top, accepted = ReplayWindow(), -1, set()
    for counter in counters:
        fresh = counter not in accepted and counter > top - WINDOW
        assert window.accept(counter) is fresh
        if fresh:
            accepted.add(counter)
            top = max(top, counter)
