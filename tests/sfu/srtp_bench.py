"""The native fan-out's own cost per copy, without the send: ``python -m tests.sfu.srtp_bench``.

One ``fo_fanout`` per received packet to N consumers on transports with no socket (the flush drops
them), 1100-byte payloads: header, payload copy and SRTP only, per copy, for both of the plane's SRTP
engines (``sfu.fanout_srtp``): ``system`` (a libsrtp2 session of the system's library: Debian's is
built on NSS) and ``auto`` (a session pylibsrtp's statically linked libsrtp makes, on OpenSSL,
encrypted through its ``srtp_protect``), alternated ``--rounds`` times. Not a test: the harness of
docs/performance.md ("Where the node's CPU goes at 64 viewers").
"""

from __future__ import annotations

import argparse
import json
import os
import resource
from typing import Any

from sfu import aiortc_private, native

KEY_LENGTHS = {1: 30, 7: 28, 8: 44}
"""libsrtp profile: master key + salt (AES_CM_128_HMAC_SHA1_80, AEAD_AES_128_GCM, AEAD_AES_256_GCM)."""


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run(ffi: Any, lib: Any, engine: str, profile: int, viewers: int, packets: int) -> float:
    """CPU microseconds per copy of ``packets`` fan-outs to ``viewers`` transports of ``engine``."""
    key = os.urandom(KEY_LENGTHS[profile])
    plane = lib.fo_plane_new(64)
    keep: list[Any] = []
    records = []
    transports = []
    for i in range(viewers):
        if engine == "auto":
            sender = aiortc_private.bundled_srtp_sender(profile, key)
            assert sender is not None
            keep.append(sender)
            t = lib.fo_transport_adopt(ffi.cast("void *", sender.session), ffi.cast("void *", sender.protect))
        else:
            t = lib.fo_transport_new(profile, key, len(key))
        assert t != ffi.NULL
        transports.append(t)
        r = ffi.new("fo_consumer *")
        r.transport, r.ssrc, r.payload_type = t, 0x100 + i, 96
        records.append(r)
    array = ffi.new("fo_consumer *[]", records)
    payload, abs_, passed, lens = os.urandom(1100), bytes(3), bytes(48), bytes(3)
    c0 = cpu()
    for k in range(packets):
        lib.fo_fanout(plane, array, viewers, 0, k & 0xFFFF, k * 3000, payload, len(payload), abs_, passed, lens,
                      0.0, 1140)
        lib.fo_flush(plane)  # no target: dropped and counted
    used = cpu() - c0
    for t in transports:
        lib.fo_transport_free(plane, t)
    lib.fo_plane_free(plane)
    return used * 1e6 / (packets * viewers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--viewers", type=int, default=64)
    parser.add_argument("--packets", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", type=int, choices=sorted(KEY_LENGTHS), default=8)
    args = parser.parse_args()
    loaded = native.load()
    if isinstance(loaded, str):
        raise SystemExit(loaded)
    ffi, lib = loaded
    got: dict[str, list[float]] = {"system": [], "auto": []}
    for _ in range(args.rounds):
        for engine in got:
            got[engine].append(round(run(ffi, lib, engine, args.profile, args.viewers, args.packets), 3))
    print(json.dumps({"bench": "fanout_no_send", "srtp_profile": args.profile, "viewers": args.viewers,
                      "us_per_copy": got}))


if __name__ == "__main__":
    main()
