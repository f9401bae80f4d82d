"""Per-copy cost of the two fan-out paths, in one process: ``python -m tests.sfu.fanout_bench``.

One producer, N consumers with the extensions a browser viewer negotiates (mid, abs-send-time,
transport-cc), each behind its own UDP socket (as aioice gives each peer connection one) sending to
a receiver on 127.0.0.1; 1200-byte VP8 payloads. Prints one JSON line per path and their ratio:
process CPU per received packet and per copy (kernel send included, receive not). Not a test: the
harness of docs/performance.md's "Native fan-out" section (bench/ may not import the SFU).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import socket
import time
from typing import Any

import pytest

from sfu.consumer import Consumer
from sfu.extensions import ABS_SEND_TIME, MID, TRANSPORT_CC, Outbound
from sfu.fanout import NativeConsumer, Plane
from sfu.twcc import Departures
from sfu.types import FanoutConfig
from tests.sfu.test_native_fanout import Clock, PylibsrtpWire, loaded, new_producer

KEY_LENGTHS = {1: 30, 7: 28, 8: 44}
"""libsrtp profile -> master key + salt length (AES_CM_128_HMAC_SHA1_80, AEAD_AES_128_GCM, AEAD_AES_256_GCM)."""


class SocketWire(PylibsrtpWire):
    """The Python path's wire with a real socket (what WireSender does: protect, then sendto)."""

    def __init__(self, profile: int, sock: socket.socket, addr: tuple[str, int]) -> None:
        super().__init__(profile, bytes(range(KEY_LENGTHS[profile])))
        self.sock = sock
        self.addr = addr
        self.sendto = sock.sendto  # type: ignore[assignment]

    def send_rtp(self, packet: bytes) -> bool:
        self.sock.sendto(self.session.protect(packet), self.addr)
        return True


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run(path: str, profile: int, viewers: int, packets: int, batch: int, per_flush: int,
        sockets: int, srtp: str = "auto") -> dict[str, Any]:
    """``per_flush`` received packets per native flush (1: the end of each fan-out, as
    ``sfu.fanout_flush_ms`` 0; more stands in for a flush interval); viewers spread over ``sockets``
    UDP sockets (1: one shared port for all, as a UDP mux would give)."""
    key = bytes(range(KEY_LENGTHS[profile]))
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(min(sockets, viewers))]
    for s in socks:
        s.setblocking(False)
    producer = new_producer(Clock())
    out = Outbound.of({MID: 1, ABS_SEND_TIME: 3, TRANSPORT_CC: 4}, "0")
    # flush_ms > 0 keeps the plane from flushing at the end of each fan-out; the loop below flushes
    plane = Plane(*loaded(), FanoutConfig("native", batch, 0.0 if per_flush <= 1 else 100.0, srtp)) \
        if path == "native" else None
    producer.plane = plane
    mp = pytest.MonkeyPatch()
    try:
        found: dict[int, Any] = {}
        mp.setattr("sfu.aiortc_private.srtp_tx_keying", lambda dtls: (profile, key))
        mp.setattr("sfu.aiortc_private.nominated_target", lambda dtls: found.get(id(dtls)))
        for i in range(viewers):
            s = socks[i % len(socks)]
            if plane is None:
                c: Consumer = Consumer(f"c{i}", producer, SocketWire(profile, s, sink.getsockname()), 0x100 + i, 96,  # type: ignore[arg-type]
                                       0x200 + i, 97, False, out, Departures())
            else:
                dtls = object()
                found[id(dtls)] = (s.fileno(), *sink.getsockname())
                wire = plane.wire(dtls, PylibsrtpWire(profile, key))  # type: ignore[arg-type]
                assert wire is not None
                c = NativeConsumer(f"c{i}", producer, wire, 0x100 + i, 96, 0x200 + i, 97, False, out, wire.departures)
            producer.add_consumer(c)
        payload = b"\x10\x00" + bytes(1198)
        data = [bytes([0x80, 96]) + (seq & 0xFFFF).to_bytes(2, "big") + (seq * 3000).to_bytes(4, "big")
                + b"\x11\x22\x33\x44" + payload for seq in range(packets)]
        used, wall = asyncio.run(_send(producer, plane, data, per_flush))
        n = packets - 1
        return {"fanout": path, "srtp": srtp if plane is not None else "pylibsrtp", "srtp_profile": profile,
                "viewers": viewers, "sockets": len(socks),
                "packets_per_flush": per_flush if plane is not None else None, "packets": n,
                "us_per_received_packet": round(used * 1e6 / n, 2),
                "us_per_copy": round(used * 1e6 / (n * viewers), 3), "wall_s": round(wall, 2)}
    finally:
        mp.undo()
        if plane is not None:
            plane.close()
        for s in [*socks, sink]:
            s.close()


async def _send(producer: Any, plane: Plane | None, data: list[bytes], per_flush: int) -> tuple[float, float]:
    """(CPU, wall seconds) of forwarding ``data[1:]`` (the plane's timer, if any, never runs: no await)."""
    producer.on_rtp(data[0])
    if plane is not None:
        plane.flush()
    c0, t0 = cpu(), time.perf_counter()
    for k, d in enumerate(data[1:], 1):
        producer.on_rtp(d)
        if plane is not None and k % per_flush == 0:
            plane.flush()
    if plane is not None:
        plane.flush()
    return cpu() - c0, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--viewers", type=int, default=64)
    parser.add_argument("--packets", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--per-flush", type=int, default=1,
                        help="received packets per native flush (1: flush_ms 0; more: what a flush interval gathers)")
    parser.add_argument("--sockets", type=int, default=0, help="UDP sockets the viewers share (0: one each)")
    parser.add_argument("--profile", type=int, choices=sorted(KEY_LENGTHS), default=8,
                        help="libsrtp profile (8: AEAD_AES_256_GCM, what aiortc's DTLS picks first)")
    args = parser.parse_args()
    sockets = args.sockets or args.viewers
    results = [run(path, args.profile, args.viewers, args.packets, max(args.batch, args.viewers * args.per_flush),
                   args.per_flush, sockets, srtp)
               for path, srtp in (("python", "auto"), ("native", "system"), ("native", "auto"))]
    for r in results:
        print(json.dumps(r))
    ratio = results[2]["us_per_copy"] / results[0]["us_per_copy"]
    print(json.dumps({"us_per_copy_native_over_python": round(ratio, 3)}))


if __name__ == "__main__":
    main()
