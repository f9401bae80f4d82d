"""A pipe's copy of a packet leaves before any viewer's: the far router's viewers wait for it, and
must not also wait for this router's whole fan-out (an edge's viewers waited for the origin's 100).

Real sockets on 127.0.0.1: the viewers' copies (native plane or Python consumers, real SRTP) and the
pipe's copy (a real :class:`PipeTransport`, sealed as between nodes) all go to one receiving socket,
whose queue keeps the order they were sent in. No timing is read.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from sfu.consumer import Consumer
from sfu.extensions import Outbound
from sfu.fanout import NativeConsumer, Plane
from sfu.pipe import CONTROL, PipeTransport
from sfu.pipe_seal import Seal
from sfu.producer import Producer
from sfu.twcc import Departures
from sfu.types import FanoutConfig
from tests.sfu.fanout_bench import SocketWire
from tests.sfu.test_native_fanout import Clock, PylibsrtpWire, loaded, new_producer, receiver

PROFILE = 1  # AES_CM_128_HMAC_SHA1_80
KEY = bytes(range(30))
SOURCE_SSRC = 0x11223344
KEYFRAME = b"\x10\x00\x00\x9d\x01\x2a"
DELTA = b"\x10\x00\x01\x00\x00\x00"


def rtp(seq: int, payload: bytes, marker: int = 0x80) -> bytes:
    return bytes([0x80, marker | 96]) + seq.to_bytes(2, "big") + (seq * 3000).to_bytes(4, "big") \
        + SOURCE_SSRC.to_bytes(4, "big") + payload


def ssrcs(datagrams: list[bytes]) -> list[int]:
    """Each media datagram's SSRC, in arrival order (the pipe's control datagrams left out)."""
    return [int.from_bytes(d[8:12], "big") for d in datagrams if d[0] != CONTROL]


def drain(rx: socket.socket) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(rx.recv(65536))
        except BlockingIOError:
            return out


class Viewers:
    """Viewers' consumers of one producer, sending real SRTP to one socket: native or Python."""

    def __init__(self, path: str, producer: Producer, to: tuple[str, int], mp: pytest.MonkeyPatch) -> None:
        self.producer = producer
        self.to = to
        self.plane = Plane(*loaded(), FanoutConfig(mode="native")) if path == "native" else None
        producer.plane = self.plane
        self.tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.tx.setblocking(False)
        self.targets: dict[int, Any] = {}
        mp.setattr("sfu.aiortc_private.srtp_tx_keying", lambda dtls: (PROFILE, KEY))
        mp.setattr("sfu.aiortc_private.nominated_target", lambda dtls: self.targets.get(id(dtls)))
        self.consumers: list[Consumer] = []
        self.dtls: list[object] = []

    def add(self, ssrc: int) -> None:
        out = Outbound.of({}, None)
        if self.plane is None:
            wire: Any = SocketWire(PROFILE, self.tx, self.to)
            c = Consumer(f"c{ssrc}", self.producer, wire, ssrc, 100, ssrc + 1, 97, False, out, Departures())
        else:
            dtls = object()
            self.dtls.append(dtls)
            self.targets[id(dtls)] = (self.tx.fileno(), *self.to)
            w = self.plane.wire(dtls, PylibsrtpWire(PROFILE, KEY))  # type: ignore[arg-type]
            assert w is not None
            c = NativeConsumer(f"c{ssrc}", self.producer, w, ssrc, 100, ssrc + 1, 97, False, out, w.departures)
        self.consumers.append(c)
        self.producer.add_consumer(c)

    def close(self) -> None:
        for c in self.consumers:
            c.close()
        if self.plane is not None:
            self.plane.close()
        self.tx.close()


@pytest.fixture
def rx() -> Iterator[socket.socket]:
    s = receiver()
    yield s
    s.close()


@pytest.mark.parametrize("path", ["native", "python"])
async def test_a_pipe_copy_leaves_before_every_viewer_copy(path: str, rx: socket.socket,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sfu.producer.time", Clock())
    producer = new_producer(Clock())
    viewers = Viewers(path, producer, rx.getsockname(), monkeypatch)
    pipe = PipeTransport("edge-1", new_producer=lambda *a: pytest.fail("an exporting end makes no producer"),
                         on_producer=lambda t, p: None, on_producer_closed=lambda t, p: None,
                         seal=Seal(b"0123456789abcdef-shared-by-both-nodes"))
    try:
        await pipe.open()
        pipe.connect(rx.getsockname()[1], export=True, host="127.0.0.1")
        for ssrc in (0xA0, 0xA2, 0xA4):  # viewers already watching when the edge pulls the show
            viewers.add(ssrc)
        producer.on_rtp(rtp(1, KEYFRAME))
        assert set(ssrcs(drain(rx))) == {0xA0, 0xA2, 0xA4}
        pipe.export(producer)  # the pipe starts at the next keyframe, after those viewers
        viewers.add(0xA6)  # and a viewer after it
        producer.on_rtp(rtp(2, KEYFRAME))
        for seq in range(3, 8):
            producer.on_rtp(rtp(seq, DELTA, marker=0x80 if seq % 2 else 0))
        await asyncio.sleep(0)  # nothing is held for later: every copy was sent during on_rtp
        got = ssrcs(drain(rx))
        assert len(got) == 6 * 5, got
        per_packet = [got[i:i + 5] for i in range(0, len(got), 5)]
        for copies in per_packet:  # the pipe's copy carries the publisher's own SSRC
            assert copies[0] == SOURCE_SSRC, [hex(s) for s in copies]
            assert sorted(copies[1:]) == [0xA0, 0xA2, 0xA4, 0xA6]
        assert pipe.exported[SOURCE_SSRC].packets == 6
    finally:
        pipe.close()
        viewers.close()
