"""In-process measurement of evidence clip buffers: ``python -m tests.sfu.clip_bench`` prints JSON lines.
(A measurement harness, so it lives in tests/, not in the product package: STYLE.md rule 16.)

- ``clip_cpu``: CPU per packet through :meth:`sfu.producer.Producer.on_rtp` (the hot path up to the
  consumers' ``forward``, here a counting stub) with the clip buffer off and on, alternated in rounds
  in the same run; the extra nanoseconds per packet are what a buffer costs every forwarded packet
  (the real forward, SRTP + sendto per consumer, comes on top and is unchanged).
- ``clip_memory``: bytes held by one video producer's buffer after a steady 1.5 Mbit/s for longer
  than the horizon (tracemalloc of the buffer's entries), and by an Opus track's.
- ``clip_write``: wall time to remux 30 s of 1.5 Mbit/s VP8 + Opus into WebM (:func:`sfu.remux.write_clip`).

The media is synthetic (packet sizes and rates of a 1.5 Mbit/s 30 fps VP8 track and 20 ms Opus);
the buffer's clock is injected so 60 s of media take no 60 s.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import struct
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

from sfu.clips import ClipBuffer, TrackSnapshot
from sfu.keyframes import KEYFRAME_INTERVAL_S
from sfu.producer import Codec, KeyframeRequester, Producer
from sfu.remux import write_clip
from sfu.rtp import is_vp8_keyframe_start

BITRATE = 1_500_000
FPS = 30
PAYLOAD = 1100
KEY = b"\x10\x00\x00\x00\x9d\x01\x2a\x80\x02\xe0\x01"
"""VP8 descriptor (S=1) + key frame header (640x480)."""
INTER = b"\x10\x01"
Packet = tuple[float, int, int, int, bytes]
"""(time, seq, ts, marker, payload)."""


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def video_packets(seconds: float, interval: float = KEYFRAME_INTERVAL_S) -> Iterator[Packet]:
    """(time, seq, ts, marker, payload) of a 1.5 Mbit/s 30 fps VP8 track with a keyframe every ``interval``."""
    per_frame = BITRATE // 8 // FPS
    seq = 0
    for frame in range(int(seconds * FPS)):
        t = frame / FPS
        key = frame % int(interval * FPS) == 0
        size = per_frame * (4 if key else 1)
        n = max(1, size // PAYLOAD)
        for i in range(n):
            head = (KEY if key else INTER) if i == 0 else b"\x00"
            yield t, seq & 0xFFFF, frame * 3000, int(i == n - 1), head + b"v" * (PAYLOAD - len(head))
            seq += 1


def audio_packets(seconds: float) -> Iterator[Packet]:
    for i in range(int(seconds * 50)):
        yield i / 50, i & 0xFFFF, i * 960, 1, b"\xfc" + b"a" * 79


def rtp(seq: int, ts: int, marker: int, payload: bytes) -> bytes:
    return struct.pack("!BBHII", 0x80, 96 | (0x80 if marker else 0), seq, ts, 1234) + payload


class Sink:
    hidden = False

    def __init__(self) -> None:
        self.n = 0

    def start(self, seq: int, ts: int) -> None:
        pass

    def forward(self, seq: int, ts: int, marker: int, payload: bytes) -> None:
        self.n += 1


def producer(clip: bool, clock: Callable[[], float]) -> Producer:
    codec = Codec("video", "video/VP8", 90000, 96)
    p = Producer("p1", "peer", codec, 1234, KeyframeRequester(lambda: None, 0.5, lambda d, f: None))  # type: ignore[arg-type,return-value]
    p.send_nack = None
    if clip:
        p.clip = ClipBuffer(30, KEYFRAME_INTERVAL_S, p.is_keyframe, clock)
    p.active.append(Sink())  # type: ignore[arg-type]
    return p


def cpu(rounds: int, seconds: float) -> dict[str, Any]:
    packets = [(t, rtp(s, ts, m, pl)) for t, s, ts, m, pl in video_packets(2 * seconds)]
    times = [t for t, _ in packets]
    warm = next(i for i, (t, _) in enumerate(packets) if t >= seconds)
    best = {False: float("inf"), True: float("inf")}
    for _ in range(rounds):
        for clip in (False, True):
            # The buffer reads the packets' times from a C iterator: no Python clock in the measure.
            p = producer(clip, functools.partial(next, iter(times)))
            for _, data in packets[:warm]:  # the first half fills the buffer: measure its steady state
                p.on_rtp(data)
            gc.disable()
            start = time.process_time_ns()
            for _, data in packets[warm:]:
                p.on_rtp(data)
            elapsed = time.process_time_ns() - start
            gc.enable()
            best[clip] = min(best[clip], elapsed / (len(packets) - warm))
    return {"event": "clip_cpu", "packets": len(packets) - warm, "rounds": rounds,
            "ns_per_packet_off": round(best[False]), "ns_per_packet_on": round(best[True]),
            "extra_ns_per_packet": round(best[True] - best[False]),
            "ratio": round(best[True] / best[False], 3)}


def memory(seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {"event": "clip_memory", "clip_seconds": 30, "bitrate": BITRATE}
    for kind, packets, detect in (("video", video_packets(seconds), is_vp8_keyframe_start),
                                  ("audio", audio_packets(seconds), None)):
        clock = Clock()
        tracemalloc.start()
        buf = ClipBuffer(30, KEYFRAME_INTERVAL_S, detect, clock)
        for t, s, ts, m, payload in packets:
            clock.now = t
            buf.add(s, ts, m, payload)  # a fresh bytes per packet, as the producer's slice is
        current, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out[f"{kind}_bytes"] = current
        out[f"{kind}_seconds_held"] = round(buf.entries[-1][0] - buf.entries[0][0], 2)
        out[f"{kind}_payload_bytes"] = buf.bytes
    return out


def write(seconds: float) -> dict[str, Any]:
    def snap(kind: str, mime: str, rate: int, packets: Iterator[Packet]) -> TrackSnapshot:
        return TrackSnapshot(kind, "peer", kind, mime, rate, 2, list(packets), None)

    tracks = [snap("video", "video/VP8", 90000, video_packets(seconds + 4)),
              snap("audio", "audio/opus", 48000, audio_packets(seconds + 4))]
    start = time.perf_counter()
    clip = write_clip(tracks, seconds)
    return {"event": "clip_write", "clip_seconds": seconds, "bytes": len(clip.data),
            "duration_s": round(clip.duration_s, 2), "ms": round((time.perf_counter() - start) * 1000, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sfu.clip_bench")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=60.0, help="media fed per CPU round")
    args = parser.parse_args(argv)
    for line in (cpu(args.rounds, args.seconds), memory(60.0), write(30.0)):
        print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
