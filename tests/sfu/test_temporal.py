"""VP8 temporal layers over recorded packets (pure): an L1T3 stream (TID pattern 0,2,1,2 with Y on the
first picture of each layer after a base picture), pictures of 1-3 packets, filtered to fewer
temporal layers with switches at any time. What the viewer gets: picture ids consecutive, TL0PICIDX
going on by one per base picture, no picture above the layer, layer rises only at sync points or
keyframes; and a spatial switch (another layer's ids) rebased at its keyframe."""

from __future__ import annotations

import itertools
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from sfu.temporal import TemporalFilter, parse

FANOUT_PATHS = ()
"""No Worker or WorkerPool here: the fan-out setting does not reach these tests; one run (tests/conftest.py)."""

PATTERN = [0, 2, 1, 2]


def picture(pid: int, tl0: int, tid: int, sync: bool, key: bool, packets: int, pid_bits: int = 15) -> list[bytes]:
    """The packets of one picture: descriptor with I, L, T (X set), then a VP8 payload header byte."""
    out = []
    for k in range(packets):
        b0 = 0x80 | (0x10 if k == 0 else 0x00)
        pid_bytes = bytes([0x80 | (pid >> 8) & 0x7F, pid & 0xFF]) if pid_bits == 15 else bytes([pid & 0x7F])
        desc = bytes([b0, 0xE0]) + pid_bytes + bytes([tl0 & 0xFF, (tid << 6) | (0x20 if sync else 0)])
        out.append(desc + (bytes([0x00 if key else 0x01]) if k == 0 else b"\xaa") + bytes([tid]))
    return out


def stream(rng: random.Random, pictures: int, pid0: int, tl00: int, gop: int = 40,
           pid_bits: int = 15) -> list[list[bytes]]:
    out, pid, tl0 = [], pid0, tl00
    for n in range(pictures):
        tid = PATTERN[n % 4]
        if tid == 0 and n:
            tl0 += 1
        sync = tid > 0 and n % 4 in (1, 2)  # first TID 2 and first TID 1 after a base picture
        out.append(picture(pid, tl0, tid, sync, n % gop == 0, rng.randint(1, 3), pid_bits))
        pid = (pid + 1) & ((1 << pid_bits) - 1)
    return out


def check(got: list[bytes], pid_bits: int = 15) -> list[int]:
    """Consecutive picture ids and TL0PICIDX; returns the TIDs of the pictures the viewer got."""
    starts = [d for d in (parse(p) for p in got) if d is not None and d.start]
    mask = (1 << pid_bits) - 1
    for a, b in itertools.pairwise(starts):
        assert b.picture_id == (a.picture_id + 1) & mask, (a, b)
        assert b.tl0 == (a.tl0 + (1 if b.tid == 0 else 0)) & 0xFF, (a, b)
    return [d.tid for d in starts]


def run(f: TemporalFilter, pictures: list[list[bytes]], plan: dict[int, int]) -> tuple[list[bytes], list[int]]:
    got, allowed = [], []
    for n, packets in enumerate(pictures):
        if n in plan:
            f.target = plan[n]
        allowed.append(f.current)
        for p in packets:
            out = f.on_packet(p)
            if out is not None:
                got.append(out)
    return got, allowed


def test_dropping_to_the_base_layer_and_back_keeps_ids_consecutive() -> None:
    f = TemporalFilter()
    pictures = stream(random.Random(1), 200, 32760, 250)  # both ids wrap on the way
    got, _ = run(f, pictures, {20: 0, 80: 1, 120: 2})
    tids = check(got)
    assert tids[:20] == PATTERN * 5 and set(tids[20:35]) == {0}  # pictures 20-79: the base layer only
    assert tids[-8:].count(2) == 4  # back to all three at the end
    sent = sum(len(p) for p in pictures)
    assert f.dropped == sent - len(got) > 0


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**32), plan=st.dictionaries(st.integers(0, 159), st.integers(0, 2), max_size=10),
       pid_bits=st.sampled_from([7, 15]))
def test_any_plan_gives_a_stream_that_decodes(seed: int, plan: dict[int, int], pid_bits: int) -> None:
    f = TemporalFilter()
    pictures = stream(random.Random(seed), 160, random.Random(seed).getrandbits(pid_bits), seed & 0xFF,
                      pid_bits=pid_bits)
    got, _ = run(f, pictures, plan)
    tids = check(got, pid_bits)
    # never a picture above the layer asked for at its time; a rise only at a sync picture or keyframe
    starts = [d for d in (parse(p) for p in got) if d is not None and d.start]
    level = 2
    for d in starts:
        if d.tid > level:
            assert d.sync or d.key, d
        level = max(level, d.tid) if not d.key else 2
    assert len(tids) == len(starts)


def test_a_spatial_switch_rebases_ids_at_the_new_layers_keyframe() -> None:
    f = TemporalFilter()
    low = stream(random.Random(2), 40, 100, 7)
    high = stream(random.Random(3), 40, 9000, 200)
    got, _ = run(f, low[:30], {})
    f.rebase = True
    more, _ = run(f, high[:40], {})  # picture 0 of ``high`` is its keyframe
    check(got + more)


def test_packets_without_temporal_layers_pass_untouched() -> None:
    f = TemporalFilter()
    f.target = 0
    plain = bytes([0x90, 0x80, 0x85, 0x39, 0x01, 0xaa])  # X, I only (no T)
    assert f.on_packet(plain) is plain
    assert f.on_packet(b"\x10\x00\x9d") == b"\x10\x00\x9d"  # no extension at all
    assert parse(b"") is None and parse(b"\x80") is None


def test_a_consumer_dropping_temporal_layers_keeps_numbering_and_answers_nacks_right() -> None:
    from sfu.consumer import Consumer
    from sfu.producer import Codec, KeyframeRequester, Producer
    from sfu.rtp import HEADER, SEQ_TS, payload_offset
    from sfu.types import PeerId
    from tests.sfu.test_extensions_units import Wire

    vp8 = Codec("video", "video/VP8", 90000, 96)
    producers = [Producer(f"p{i}", PeerId("pub"), vp8, 1000 + i,
                          KeyframeRequester(lambda: None, 0.0, lambda d, f: None))  # type: ignore[arg-type, return-value]
                 for i in range(2)]
    wire = Wire()
    consumer = Consumer("c", producers[0], wire, 4242, 100, 0, None, False)  # type: ignore[arg-type]
    producers[0].add_consumer(consumer)
    consumer.use_temporal()
    rng = random.Random(4)
    streams = [stream(rng, 120, 500, 3, gop=30), stream(rng, 120, 20000, 90, gop=30)]
    seqs, ts0 = [65000, 12], [4_000_000_000, 77]
    for n in range(120):
        if n == 10:
            consumer.use_temporal(0)
        if n == 50:
            consumer.use_temporal(2)
            consumer.switch_at_keyframe(producers[1])  # a spatial switch at the next keyframe (60)
        if n == 70:
            consumer.use_temporal(1)
        for i in range(2):
            for p in streams[i][n]:
                producers[i].on_rtp(HEADER.pack(0x80, 96, seqs[i] & 0xFFFF, (ts0[i] + n * 3000) & 0xFFFFFFFF,
                                                1000 + i) + p)
                seqs[i] += 1
    got = [(SEQ_TS.unpack_from(p, 2), p[payload_offset(p):]) for p in wire.sent]
    for ((s0, t0), _), ((s1, t1), _) in itertools.pairwise(got):
        assert s1 == (s0 + 1) & 0xFFFF and 0 <= (t1 - t0) & 0xFFFFFFFF < 0x80000000
    tids = check([body for _, body in got])
    assert consumer.switches == 1 and 2 in tids and 0 in tids
    assert consumer.temporal is not None and consumer.temporal.dropped > 0
    n = len(wire.sent)
    asked = [got[k] for k in (5, len(got) // 3, len(got) // 2, len(got) - 3)]
    consumer.on_nack([s for (s, _), _ in asked])
    again = [(SEQ_TS.unpack_from(p, 2), p[payload_offset(p):]) for p in wire.sent[n:]]
    assert [(s, parse(b).picture_id if parse(b) else None) for (s, _), b in again] == \
           [(s, parse(b).picture_id if parse(b) else None) for (s, _), b in asked]  # type: ignore[union-attr]


def test_a_viewer_loses_frames_before_pixels_and_gets_them_back_first() -> None:
    from sfu.simulcast import LayerChoice

    rates = [400_000.0, 1_000_000.0, 3_000_000.0]
    choice = LayerChoice(current=2, layered=True, probing=True)
    assert choice.choose(2_000_000, rates, 0.0) == 2 and choice.temporal == 1  # 15 fps of 720p
    assert choice.choose(1_200_000, rates, 1.0) == 1 and choice.temporal == 2  # under 15 fps of it: 360p
    assert choice.choose(185_000, rates, 2.0) == 0 and choice.temporal == 0  # 7.5 fps on the lowest only
    assert choice.choose(185_000, rates, 3.0) == 0 and choice.temporal == 0 and not choice.paused
    assert choice.choose(1.3 * 0.6 * rates[0], rates, 4.0) == 0 and choice.temporal == 1  # frames come back first
    assert choice.choose(5_000_000, rates, 5.0) == 0 and choice.temporal == 2
    assert choice.choose(5_000_000, rates, 6.0) == 1  # then pixels
    flat = LayerChoice(current=2, probing=True)  # no temporal layers in the stream: straight down
    assert flat.choose(2_000_000, rates, 0.0) == 1 and flat.temporal == 2
