"""A link too weak for any video (pure): the viewer's video consumer pauses (audio goes on, another
consumer) and resumes at a keyframe with continuous numbering; the choice pauses only on the lowest
layer at its fewest frames, and comes back on a proof (probe); a viewer that cannot be probed (REMB) never pauses."""

from __future__ import annotations

import random

from sfu.consumer import Consumer
from sfu.simulcast import AUDIO_RESERVE, PAUSE_AFTER_S, LayerChoice
from tests.sfu.test_extensions_units import Wire
from tests.sfu.test_simulcast_units import check_viewer_stream, decode, frame_packets, make_layers

FANOUT_PATHS = ()
"""No Worker or WorkerPool here: the fan-out setting does not reach these tests; one run (tests/conftest.py)."""


def test_a_choice_pauses_video_below_its_fewest_frames_beside_the_audio_and_resumes_on_proof() -> None:
    rates = [150_000.0, 500_000.0, 1_500_000.0]
    choice = LayerChoice(layered=True, probing=True)
    assert choice.choose(AUDIO_RESERVE + 100_000, rates, 0.0) == 0 and not choice.paused
    assert choice.choose(AUDIO_RESERVE + 20_000, rates, 1.0) == 0 and not choice.paused  # one dip: not yet
    assert choice.choose(AUDIO_RESERVE + 20_000, rates, 1.0 + PAUSE_AFTER_S) == 0
    assert choice.paused and choice.temporal == 0
    for t in range(4, 100):  # probed: no trial, whatever the wait
        choice.choose(AUDIO_RESERVE + 30_000, rates, float(t))
        assert choice.paused
    assert choice.choose(AUDIO_RESERVE + 80_000, rates, 100.0) == 0 and not choice.paused
    unprobed = LayerChoice()  # REMB only: too rough an estimate to stop its video on
    for t in range(int(3 * PAUSE_AFTER_S)):
        unprobed.choose(30_000, rates, float(t))
        assert not unprobed.paused


def test_a_paused_consumer_sends_nothing_and_resumes_at_a_keyframe_continuously() -> None:
    rng = random.Random(9)
    layers = make_layers(rng)
    spec = layers[0]
    wire = Wire()
    consumer = Consumer("c", spec.producer, wire, 4242, 100, 0, None, False)  # type: ignore[arg-type]
    spec.producer.add_consumer(consumer)
    plis_before = 0
    for frame in range(200):
        if frame == 40:
            consumer.pause()
            n = len(wire.sent)
        if frame == 120:
            assert len(wire.sent) == n  # nothing while paused
            plis_before = len(spec.plis)
            consumer.resume()
        for p in frame_packets(0, spec, frame):
            spec.producer.on_rtp(p)
    assert len(spec.plis) > plis_before  # resuming asks for a keyframe
    check_viewer_stream(wire.sent)  # numbering continuous, timestamps on, restarts at a keyframe
    assert len(wire.sent) > n and decode(wire.sent[n])[4]  # the first packet after the pause starts a keyframe
