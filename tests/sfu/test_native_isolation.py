"""On the native fan-out, one viewer's trouble stays its own: a viewer leaving while its packets wait
in the batch, a port that refuses (ECONNREFUSED), a send the kernel rejects for one viewer of a
shared socket. Pure: real UDP sockets on 127.0.0.1, no peers. Fails (never skips) without the extension."""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import Any

import pytest

from sfu.extensions import Outbound
from sfu.fanout import NativeConsumer, NativeWire, Plane
from sfu.types import FanoutConfig
from tests.sfu.test_native_fanout import Clock, PylibsrtpWire, drain, loaded, new_producer, receiver

FANOUT_PATHS = ("native",)
"""The native plane's batches and sockets: native only (tests/conftest.py)."""

KEY = bytes(range(30))


def keyframe(seq: int) -> bytes:
    return bytes([0x80, 96]) + seq.to_bytes(2, "big") + (seq * 3000).to_bytes(4, "big") + b"\x11\x22\x33\x44" \
        + b"\x10\x00" + bytes(200)


class Viewers:
    """A producer with one native consumer per (socket, address) target."""

    def __init__(self, plane: Plane, targets: list[tuple[socket.socket, tuple[str, int]]],
                 monkeypatch: pytest.MonkeyPatch) -> None:
        self.plane = plane
        self.producer = new_producer(Clock())
        self.producer.plane = plane
        self.wires: list[NativeWire] = []
        self.consumers: list[NativeConsumer] = []
        found: dict[int, Any] = {}
        monkeypatch.setattr("sfu.aiortc_private.srtp_tx_keying", lambda dtls: (1, KEY))
        monkeypatch.setattr("sfu.aiortc_private.nominated_target", lambda dtls: found.get(id(dtls)))
        for i, (sock, addr) in enumerate(targets):
            dtls = object()
            found[id(dtls)] = (sock.fileno(), *addr)
            wire = plane.wire(dtls, PylibsrtpWire(1, KEY))  # type: ignore[arg-type]
            assert wire is not None
            c = NativeConsumer(f"c{i}", self.producer, wire, 0x100 + i, 100, 0x200 + i, 97, False,
                               Outbound.of({}, None), wire.departures)
            self.producer.add_consumer(c)
            self.wires.append(wire)
            self.consumers.append(c)

    def send(self, n: int, first: int = 1) -> None:
        for seq in range(first, first + n):
            self.producer.on_rtp(keyframe(seq))

    def leave(self, i: int) -> None:
        """What Transport.close does: its consumers close, then its native wire."""
        self.consumers[i].close()
        self.wires[i].close()


def closed_port() -> tuple[str, int]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    addr = s.getsockname()
    s.close()
    return addr


def udp() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    return s


async def test_a_viewer_leaving_mid_batch_loses_only_its_own_packets(monkeypatch: pytest.MonkeyPatch) -> None:
    ffi, lib = loaded()
    plane = Plane(ffi, lib, FanoutConfig(mode="native", batch=1000, flush_ms=50))
    rx = [receiver() for _ in range(3)]
    tx = [udp() for _ in range(3)]
    try:
        v = Viewers(plane, list(zip(tx, [r.getsockname() for r in rx], strict=True)), monkeypatch)
        v.send(10)
        v.leave(1)  # its 10 packets wait in the batch: they must not leave, the others' must
        tx[1].close()
        spare = udp()  # takes the closed socket's file descriptor number
        try:
            v.send(5, first=11)
            plane.flush()
            got = [drain(r) for r in rx]
            assert [len(g) for g in got] == [15, 0, 15]
            v.send(3, first=16)  # then the timer flushes on its own

            async def arrived() -> None:
                while len(drain_into(got[0], rx[0])) < 18:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            await asyncio.wait_for(arrived(), 5)
            assert v.consumers[0].packets == v.consumers[2].packets == 18
        finally:
            spare.close()
    finally:
        plane.close()
        for s in rx + tx:
            s.close()


def drain_into(into: list[bytes], s: socket.socket) -> list[bytes]:
    into += drain(s)
    return into


def test_a_refusing_port_never_affects_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    """The middle viewer's socket is connected to a closed port: after the first packet's ICMP, every
    send to it fails with ECONNREFUSED; the viewers before and after it get every packet."""
    ffi, lib = loaded()
    plane = Plane(ffi, lib, FanoutConfig(mode="native", batch=64))
    rx = [receiver(), receiver()]
    refused = closed_port()
    bad = udp()
    bad.connect(refused)
    tx = [udp(), bad, udp()]
    try:
        v = Viewers(plane, [(tx[0], rx[0].getsockname()), (bad, refused), (tx[2], rx[1].getsockname())], monkeypatch)
        v.send(50)
        assert [len(drain(r)) for r in rx] == [50, 50]
        bad_t = v.wires[1].t
        assert bad_t.send_errors > 0 and bad_t.last_errno == errno.ECONNREFUSED
        assert v.wires[0].send_errors == v.wires[2].send_errors == 0
        assert v.wires[1].dropped == bad_t.send_errors
    finally:
        plane.close()
        for s in rx + tx:
            s.close()


def test_one_viewer_refused_inside_a_shared_sockets_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three viewers behind one socket (one sendmmsg for all): the kernel rejects every message to the
    middle one (an IPv6 address on an IPv4 socket, as ENOBUFS would reject one message): the messages
    after it in the same call still go."""
    ffi, lib = loaded()
    plane = Plane(ffi, lib, FanoutConfig(mode="native", batch=64))
    rx = [receiver(), receiver()]
    shared = udp()
    try:
        v = Viewers(plane, [(shared, rx[0].getsockname()), (shared, ("::1", 9)), (shared, rx[1].getsockname())],
                    monkeypatch)
        v.send(20)
        assert [len(drain(r)) for r in rx] == [20, 20]
        assert v.wires[1].send_errors == 20 and v.wires[1].t.last_errno in (errno.EAFNOSUPPORT, errno.EINVAL)
        assert v.wires[0].sent_packets == v.wires[2].sent_packets == 20
    finally:
        plane.close()
        for s in [*rx, shared]:
            s.close()


def test_viewers_behind_one_socket_share_one_sendmmsg(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each wire sends on its own duplicate of the pair's descriptor; wires whose duplicates are one
    socket (a shared UDP port) still leave in one call per flush, viewers on their own sockets in one
    call each."""
    ffi, lib = loaded()
    plane = Plane(ffi, lib, FanoutConfig(mode="native", batch=64))
    rx = [receiver() for _ in range(4)]
    shared, own = udp(), udp()
    try:
        v = Viewers(plane, [(shared, rx[0].getsockname()), (shared, rx[1].getsockname()),
                            (shared, rx[2].getsockname()), (own, rx[3].getsockname())], monkeypatch)
        assert len({w._fd for w in v.wires}) == 4
        before = plane.syscalls
        v.send(5)
        assert plane.syscalls - before == 5 * 2
        assert [len(drain(r)) for r in rx] == [5, 5, 5, 5]
    finally:
        plane.close()
        for s in [*rx, shared, own]:
            s.close()


def test_a_transport_without_a_pair_drops_and_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    ffi, lib = loaded()
    plane = Plane(ffi, lib, FanoutConfig(mode="native"))
    rx = receiver()
    tx = udp()
    try:
        v = Viewers(plane, [(tx, rx.getsockname())], monkeypatch)
        monkeypatch.setattr("sfu.aiortc_private.nominated_target", lambda dtls: None)
        assert v.wires[0].refresh() is False
        v.send(4)
        assert drain(rx) == [] and v.wires[0].dropped == 4
    finally:
        plane.close()
        rx.close()
        tx.close()
