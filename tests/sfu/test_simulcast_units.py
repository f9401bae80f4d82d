"""Simulcast layer switches over recorded packets (pure: no sockets): three layers of one VP8 track,
each with its own SSRC, sequence and timestamp bases and keyframe phase, interleaved as they arrive;
one consumer switched between them. What the viewer receives has continuous sequence numbers and
monotonic timestamps, and every change of layer starts at a keyframe of the target layer."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from sfu.consumer import Consumer
from sfu.producer import Codec, KeyframeRequester, Producer
from sfu.rtp import HEADER, SEQ_TS, payload_offset
from sfu.simulcast import UP_HOLD_S, LayerChoice, SimulcastTrack
from sfu.transport_rtcp import REMB_BITRATE, publisher_remb
from sfu.types import PeerId
from tests.sfu.test_extensions_units import Wire

FANOUT_PATHS = ()
"""No Worker or WorkerPool here: the fan-out setting does not reach these tests; one run (tests/conftest.py)."""

VP8 = Codec("video", "video/VP8", 90000, 96)
FRAME_TICKS = 3000  # 30 fps


@dataclass
class Layer:
    producer: Producer
    plis: list[int]
    seq: int
    ts: int
    gop: int
    phase: int
    packets_per_frame: int


def make_layers(rng: random.Random) -> list[Layer]:
    layers = []
    for i in range(3):
        plis: list[int] = []
        kf = KeyframeRequester(lambda plis=plis: plis.append(1), 0.0, lambda d, f: None)  # type: ignore[arg-type, return-value, misc]
        producer = Producer(f"p{i}", PeerId("pub"), VP8, 1000 + i, kf)
        layers.append(Layer(producer, plis, rng.getrandbits(16), rng.getrandbits(32), rng.choice([10, 15, 30]),
                            rng.randrange(10), 1 + 2 * i))
    return layers


def frame_packets(layer: int, spec: Layer, frame: int) -> list[bytes]:
    """One frame of one layer: VP8 descriptor (S bit on the first packet, P=0 on a keyframe), then the
    layer and frame number so that the viewer's packets can be traced back."""
    key = frame % spec.gop == spec.phase % spec.gop
    out = []
    for k in range(spec.packets_per_frame):
        desc = bytes([0x10, 0x00 if key else 0x01]) if k == 0 else bytes([0x00, 0x00])
        marker = 0x80 if k == spec.packets_per_frame - 1 else 0
        out.append(HEADER.pack(0x80, marker | 96, spec.seq & 0xFFFF, (spec.ts + frame * FRAME_TICKS) & 0xFFFFFFFF,
                               spec.producer.ssrc) + desc + bytes([layer]) + frame.to_bytes(2, "big") + bytes([k]))
        spec.seq += 1
    return out


def decode(packet: bytes) -> tuple[int, int, int, int, bool]:
    """(seq, ts, layer, frame, keyframe start) of a packet the viewer got."""
    seq, ts = SEQ_TS.unpack_from(packet, 2)
    body = packet[payload_offset(packet):]
    return seq, ts, body[2], int.from_bytes(body[3:5], "big"), body[0] == 0x10 and body[1] == 0x00


def check_viewer_stream(sent: list[bytes]) -> list[int]:
    """Continuity and keyframe-only switches; returns the layer of each packet."""
    got = [decode(p) for p in sent]
    assert got and got[0][4], "a viewer starts at a keyframe"
    for (s0, t0, l0, _, _), (s1, t1, l1, _, key) in itertools.pairwise(got):
        assert s1 == (s0 + 1) & 0xFFFF, "sequence numbers go on by one, across switches too"
        assert 0 <= (t1 - t0) & 0xFFFFFFFF < 0x80000000, "timestamps never go back"
        if l1 != l0:
            assert key, "a layer switch happens only at a keyframe of the target layer"
            assert (t1 - t0) & 0xFFFFFFFF > 0
    return [g[2] for g in got]


def run(seed: int, targets: list[tuple[int, int]], frames: int = 120) -> tuple[Consumer, list[Layer], Wire]:
    rng = random.Random(seed)
    layers = make_layers(rng)
    wire = Wire()
    consumer = Consumer("c", layers[0].producer, wire, 4242, 100, 0, None, False)  # type: ignore[arg-type]
    layers[0].producer.add_consumer(consumer)
    plan = dict(targets)
    for frame in range(frames):
        if frame in plan:
            consumer.switch_at_keyframe(layers[plan[frame]].producer)
        queues = [frame_packets(i, spec, frame) for i, spec in enumerate(layers)]
        while any(queues):  # the layers' packets of one frame time arrive interleaved, each in order
            i = rng.choice([i for i, q in enumerate(queues) if q])
            layers[i].producer.on_rtp(queues[i].pop(0))
    return consumer, layers, wire


def test_switches_up_and_down_keep_numbering_and_happen_at_keyframes() -> None:
    consumer, layers, wire = run(7, [(20, 2), (60, 1), (90, 0)])
    seen = check_viewer_stream(wire.sent)
    assert [k for i, k in enumerate(seen) if i == 0 or seen[i - 1] != k] == [0, 2, 1, 0]
    assert consumer.switches == 3
    assert all(spec.plis for spec in layers[1:])  # the targets were asked for a keyframe


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), targets=st.lists(st.tuples(st.integers(0, 119), st.integers(0, 2)), max_size=12))
def test_any_switch_schedule_keeps_the_viewer_stream_continuous(seed: int, targets: list[tuple[int, int]]) -> None:
    _, _, wire = run(seed, targets)
    check_viewer_stream(wire.sent)


def test_a_nack_from_before_a_switch_is_answered_from_the_layer_it_was_sent_from() -> None:
    consumer, _, wire = run(3, [(20, 2)], frames=60)
    got = [decode(p) for p in wire.sent]
    switch = next(i for i, g in enumerate(got) if g[2] == 2)
    before, after = got[switch - 1], got[switch + 1]
    n = len(wire.sent)
    consumer.on_nack([before[0], after[0]])
    assert [decode(p)[:4] for p in wire.sent[n:]] == [before[:4], after[:4]]


def test_a_hidden_consumer_switching_layers_asks_no_keyframe() -> None:
    layers = make_layers(random.Random(1))
    wire = Wire()
    tap = Consumer("t", layers[0].producer, wire, 1, 100, 0, None, True)  # type: ignore[arg-type]
    layers[0].producer.add_consumer(tap)
    for spec in layers:
        spec.producer.on_rtp(frame_packets(0, spec, spec.phase % spec.gop)[0])
    tap.switch_at_keyframe(layers[2].producer)
    assert not any(spec.plis for spec in layers)


def test_layer_choice_goes_down_at_once_and_up_slowly_one_layer_at_a_time() -> None:
    rates = [150_000.0, 500_000.0, 1_500_000.0]
    choice = LayerChoice()
    assert choice.choose(None, rates, 0.0) == 0  # no estimate yet: the lowest
    t = 0.0
    while choice.current < 2:
        t += 1.0
        choice.choose(3_000_000, rates, t)
        assert t < 3 * UP_HOLD_S
    assert t >= 2 * UP_HOLD_S  # two steps, each held
    assert choice.choose(300_000, rates, t + 1) == 0  # down at once, past the middle layer
    assert choice.choose(3_000_000, rates, t + 2) == 0  # and not back up before the hold
    capped = LayerChoice(max_layer=1)
    for k in range(20):
        capped.choose(10_000_000, rates, float(k))
    assert capped.current == 1
    capped.max_layer = 0
    assert capped.choose(10_000_000, rates, 21.0) == 0


def test_a_track_moves_a_viewer_by_its_estimate_at_keyframes() -> None:
    layers = make_layers(random.Random(5))
    wire = Wire()
    consumer = Consumer("c", layers[0].producer, wire, 4242, 100, 0, None, False)  # type: ignore[arg-type]
    layers[0].producer.add_consumer(consumer)
    track = SimulcastTrack([spec.producer for spec in layers])
    track.add(consumer)
    estimate = [5_000_000.0]
    for frame in range(30 * 30):
        for i, spec in enumerate(layers):
            for p in frame_packets(i, spec, frame):
                spec.producer.on_rtp(p)
        if frame % 30 == 0:  # a tick a second
            if frame == 30 * 20:
                estimate[0] = 1.0  # the link collapses
            track.tick(frame / 30, lambda c: estimate[0], lambda p: p.octets_received * 50)  # ~0.2, 0.65, 1.1 Mbit/s
    seen = check_viewer_stream(wire.sent)
    changes = [k for i, k in enumerate(seen) if i == 0 or seen[i - 1] != k]
    assert changes == [0, 1, 2, 0], changes


def test_an_estimate_held_back_by_what_it_receives_tries_a_step_up_and_backs_off_when_it_fails() -> None:
    from sfu.simulcast import MAX_HOLD_S

    rates = [100_000.0, 450_000.0, 1_000_000.0]
    choice = LayerChoice()
    t = 0.0
    while choice.current == 0:  # 150 kbit/s: 1.5x what it gets, the most any estimate says unprobed
        t += 1.0
        choice.choose(150_000, rates, t)
    assert t >= UP_HOLD_S
    assert choice.choose(300_000, rates, t + 1) == 0  # the link could not carry the trial: back at once
    assert choice.hold == 2 * UP_HOLD_S
    start = t + 1
    while choice.current == 0:
        t += 1.0
        choice.choose(150_000, rates, t)
    assert t - start >= 2 * UP_HOLD_S  # the next trial waited twice as long
    for _ in range(20):  # every trial fails: the hold stops growing at its bound
        choice.current, choice.went_up = 1, t
        assert choice.choose(1.0, rates, t) == 0
    assert choice.hold == MAX_HOLD_S


def test_a_simulcast_publisher_may_send_one_encodings_rate_on_its_top_layer_plus_its_lower_layers() -> None:
    """The REMB to a publisher: one encoding's (``REMB_BITRATE``) for a plain publisher; for a simulcast
    one, that plus what its lower layers were measured sending (Chrome serves its layers lowest first)."""
    layers = make_layers(random.Random(2))
    producers = [spec.producer for spec in layers]
    nothing = KeyframeRequester(lambda: None, 0.0, lambda d, f: None)  # type: ignore[arg-type, return-value]
    audio = Producer("a", PeerId("pub"), Codec("audio", "audio/opus", 48000, 111), 2000, nothing)
    plain = Producer("v", PeerId("pub"), VP8, 3000, nothing)
    assert publisher_remb([plain, audio]) == REMB_BITRATE
    track = SimulcastTrack(producers)
    for p in producers:
        p.simulcast = track
    assert publisher_remb([*producers, audio]) == REMB_BITRATE  # not measured yet
    for frame in range(91):
        for i, spec in enumerate(layers):
            for packet in frame_packets(i, spec, frame):
                spec.producer.on_rtp(packet)
        if frame % 30 == 0:
            track.tick(frame / 30)
    low, middle, top = track.bitrates
    assert 0 < low < middle < top  # 1, 3 and 5 packets a frame
    assert publisher_remb([*producers, audio]) == REMB_BITRATE + round(low + middle)
    assert publisher_remb([producers[2], producers[0]]) == REMB_BITRATE + round(low + middle)  # once per track
