"""Probing viewers whose only feedback is REMB (``sfu.probe.RembProber``), pure: REMB values in, a
judgement out. A ramp holds the viewer's incoming rate at its own estimate; the REMBs that follow
prove the next layer (the estimate reaches it), or fail the ramp (a fall: the viewer saw a queue; no
rise; too long), and failures back off. A REMB viewer steps up on a proof, never on a blind trial,
and is never paused."""

from __future__ import annotations

import random

from sfu import extensions as ext
from sfu.bwe import LinkEstimate
from sfu.consumer import Consumer
from sfu.extensions import Outbound
from sfu.probe import (
    PAD_RATIO,
    REMB_BACKOFF_S,
    REMB_FIRST_S,
    REMB_INTERVAL_S,
    REMB_MAX_INTERVAL_S,
    REMB_STALL_S,
    RembProber,
)
from sfu.producer import Codec, KeyframeRequester, Producer
from sfu.rtp import HEADER
from sfu.simulcast import TRIAL_RATIO, UP_HOLD_S, LayerChoice
from sfu.types import PeerId
from tests.sfu.test_extensions_units import Wire

RATES = [150_000.0, 480_000.0, 1_200_000.0]
NEED = 1.25 * RATES[1]


def aimd(start: float, link: float | None, seconds: float, t0: float) -> list[tuple[float, float]]:
    """(time, REMB) every 0.5 s of an aiortc-like receiver fed at its own estimate: +8 % a second
    while the link carries it; past the link (a queue) one report at 85 % of what got through."""
    out, remb, t = [], start, t0
    while t < t0 + seconds:
        t += 0.5
        if link is not None and remb > link:
            out.append((t, 0.85 * link))
            return out
        remb *= 1.08 ** 0.5
        out.append((t, remb))
    return out


def test_a_ramp_on_an_open_link_proves_the_next_layer_and_the_viewer_steps_up() -> None:
    link = LinkEstimate()
    link.on_remb(235_000, 10.0)  # the low layer's 1.5x + 10 kbit/s: the estimator's cap
    prober = link.remb_prober
    assert not prober.due(10.0 + REMB_FIRST_S - 0.1) and prober.due(10.0 + REMB_FIRST_S)
    prober.begin(NEED, 235_000, 12.0)
    choice = LayerChoice(probing=True, by_remb=True)
    results = []
    for t, remb in aimd(235_000, None, 30.0, 12.0):
        results.append(link.on_remb(int(remb), t))
        assert choice.choose(link.estimator.bitrate, RATES, t) == (1 if results[-1] else 0)
        if results[-1] is not None:
            break
    assert results[-1] is True and set(results[:-1]) == {None}
    assert link.estimator.bitrate >= NEED  # the REMB itself: no cap of ours under it
    assert prober.ramp is None and prober.proved == 1
    assert not prober.due(t + REMB_INTERVAL_S - 0.1) and prober.due(t + REMB_INTERVAL_S)  # the next layer soon


def test_a_proof_lifts_the_loss_side_of_a_viewer_that_sends_no_receiver_reports() -> None:
    link = LinkEstimate()  # the loss side starts at 1 Mbit/s and grows only with receiver reports
    link.on_remb(1_200_000, 0.0)
    assert link.estimator.bitrate == 1_000_000
    link.remb_prober.begin(1.25 * RATES[2], 1_200_000, 2.0)
    assert link.on_remb(1_300_000, 2.5) is None
    assert link.on_remb(1_520_000, 3.0) is True
    assert link.estimator.bitrate >= 1.25 * RATES[2]
    assert LayerChoice(current=1, probing=True, by_remb=True).choose(link.estimator.bitrate, RATES, 3.0) == 2


def test_a_ramp_into_a_shaped_link_fails_at_the_first_fall_and_backs_off() -> None:
    link = LinkEstimate()
    link.on_remb(235_000, 0.0)
    prober = link.remb_prober
    now, intervals = 0.0, []
    for _ in range(5):
        while not prober.due(now):
            now += 0.1
        prober.begin(NEED, 235_000, now)
        results = [link.on_remb(int(r), t) for t, r in aimd(235_000, 280_000, 30.0, now)]
        assert results[-1] is False and set(results[:-1]) <= {None}  # the fall ends it at once
        now = prober.last_end or 0.0
        intervals.append(prober.interval)
        assert link.estimator.bitrate < NEED
    assert intervals == [REMB_BACKOFF_S, 2 * REMB_BACKOFF_S, 4 * REMB_BACKOFF_S, REMB_MAX_INTERVAL_S,
                         REMB_MAX_INTERVAL_S]
    assert prober.failed == 5 and prober.proved == 0


def test_a_ramp_into_a_link_that_drops_fails_at_the_first_lossy_receiver_report() -> None:
    link = LinkEstimate()
    link.on_remb(235_000, 0.0)
    link.on_receiver_loss([0], 1.0)
    link.remb_prober.begin(NEED, 235_000, 2.0)
    assert link.ramp_basis() == 235_000
    link.on_remb(260_000, 2.5)  # a tbf that drops rather than queues: the delay-based REMB still rises
    link.on_receiver_loss([40], 3.0)  # 16 % lost
    assert link.remb_prober.ramp is None and link.remb_prober.failed == 1
    assert link.ramp_basis() < 0.95 * 260_000  # padding (next time) follows the loss side, not the REMB


def test_a_ramp_whose_remb_never_rises_fails_when_it_stalls() -> None:
    prober = RembProber()
    prober.on_remb(235_000, 0.0)
    prober.begin(NEED, 235_000, 5.0)
    assert prober.on_remb(235_000, 6.0) is None
    assert prober.check(5.0 + REMB_STALL_S - 0.1) is None
    assert prober.check(5.0 + REMB_STALL_S + 0.1) is False and prober.ramp is None


def test_padding_holds_the_incoming_rate_at_the_viewers_own_estimate() -> None:
    prober = RembProber()
    assert prober.pace(300_000, 0, 0.0) == 0  # no ramp: nothing
    prober.begin(NEED, 300_000, 0.0)
    octets, sent = 0, 0
    for i in range(1, 41):  # 2 s of 50 ms steps, the layer at 150 kbit/s
        octets += int(150_000 * 0.05 / 8)
        sent += prober.pace(300_000, octets, i * 0.05)
    padded = 8 * sent / 1.95
    assert 0.9 * (PAD_RATIO * 300_000 - 150_000) <= padded <= 1.1 * (PAD_RATIO * 300_000 - 150_000)
    assert prober.pace(100_000, octets + 10_000, 2.1) == 0  # media already over the estimate: no padding


def test_a_remb_viewer_never_trials_and_is_never_paused() -> None:
    remb = LayerChoice(probing=True, by_remb=True, layered=True)
    for t in range(int(8 * UP_HOLD_S)):  # an estimate held at ~1.5x its layer: no blind step up
        assert remb.choose(TRIAL_RATIO * 1.1 * RATES[0], RATES, float(t)) == 0
    for t in range(100, 120):  # REMB read 50 kbit/s on a 300 kbit/s link: fewer frames, never no video
        remb.choose(50_000, RATES, float(t))
        assert not remb.paused
    assert remb.temporal == 0
    tcc = LayerChoice(probing=True, layered=True)  # transport-cc: paused on the same estimate
    for t in range(100, 120):
        tcc.choose(50_000, RATES, float(t))
    assert tcc.paused


def test_probe_copies_to_a_viewer_without_transport_cc_carry_abs_send_time() -> None:
    vp8 = Codec("video", "video/VP8", 90000, 96)
    producer = Producer("p", PeerId("pub"), vp8, 1000, KeyframeRequester(lambda: None, 0.0, lambda d, f: None))  # type: ignore[arg-type, return-value]
    wire = Wire()
    out = Outbound.of({ext.MID: 1, ext.ABS_SEND_TIME: 3}, "0")
    consumer = Consumer("c", producer, wire, 4242, 100, 4343, 101, False, out)  # type: ignore[arg-type]
    assert consumer.departures is None
    producer.add_consumer(consumer)
    rng = random.Random(3)
    for k in range(20):
        desc = bytes([0x10, 0x00 if k == 0 else 0x01])
        producer.on_rtp(HEADER.pack(0x80, 0x80 | 96, 100 + k, 3000 * k, 1000) + desc + bytes(rng.randrange(50, 900)))
    wire.sent.clear()
    assert consumer.send_probe(5_000) >= 5_000
    for p in wire.sent:  # what aiortc's estimator needs to count them: abs-send-time, on the RTX stream
        assert p[1] & 0x7F == 101 and set(ext.elements(p)) == {3}


def test_probe_copies_to_a_viewer_dropping_temporal_layers_are_what_it_got_under_those_numbers() -> None:
    from sfu.rtp import SEQ_TS, payload_offset
    from tests.sfu.test_temporal import stream

    vp8 = Codec("video", "video/VP8", 90000, 96)
    producers = [Producer(f"p{i}", PeerId("pub"), vp8, 1000 + i,
                          KeyframeRequester(lambda: None, 0.0, lambda d, f: None))  # type: ignore[arg-type, return-value]
                 for i in range(2)]
    wire = Wire()
    consumer = Consumer("c", producers[0], wire, 4242, 100, 4343, 101, False)  # type: ignore[arg-type]
    producers[0].add_consumer(consumer)
    consumer.use_temporal()
    rng = random.Random(5)
    streams = [stream(rng, 120, 500, 3, gop=30), stream(rng, 120, 20000, 90, gop=30)]
    seqs = [65000, 12]
    for n in range(120):
        if n == 10:
            consumer.use_temporal(0)
        if n == 50:
            consumer.switch_at_keyframe(producers[1])  # a spatial switch at the next keyframe (60)
        if n == 70:
            consumer.use_temporal(1)  # dropping again on the new layer: the newest packet may be a drop
        for i in range(2):
            for p in streams[i][n]:
                producers[i].on_rtp(HEADER.pack(0x80, 96, seqs[i] & 0xFFFF, 3000 * n, 1000 + i) + p)
                seqs[i] += 1
        if n in (40, 80, 119):  # probes between, each checked against what the viewer got
            got = {SEQ_TS.unpack_from(p, 2)[0]: p[payload_offset(p):] for p in wire.sent if p[1] & 0x7F == 100}
            mark = len(wire.sent)
            assert consumer.send_probe(3_000) > 0
            for p in wire.sent[mark:]:
                body = p[payload_offset(p):]
                osn = int.from_bytes(body[:2], "big")
                assert got.get(osn) == body[2:], (n, osn)  # never a number it did not get, or another payload
            del wire.sent[mark:]


def test_a_number_nacked_again_at_once_is_sent_again_once() -> None:
    """aiortc repeats every missing number in each NACK: answering every repeat fed a storm on a
    300 kbit/s link (40-66 % loss)."""
    vp8 = Codec("video", "video/VP8", 90000, 96)
    producer = Producer("p", PeerId("pub"), vp8, 1000, KeyframeRequester(lambda: None, 0.0, lambda d, f: None))  # type: ignore[arg-type, return-value]
    wire = Wire()
    consumer = Consumer("c", producer, wire, 4242, 100, 4343, 101, False)  # type: ignore[arg-type]
    producer.add_consumer(consumer)
    for k in range(20):
        desc = bytes([0x10, 0x00 if k == 0 else 0x01])
        producer.on_rtp(HEADER.pack(0x80, 96, 100 + k, 3000 * k, 1000) + desc + bytes(100))
    wire.sent.clear()
    a, b = (105 + consumer.seq_off) & 0xFFFF, (110 + consumer.seq_off) & 0xFFFF
    consumer.on_nack([a])
    consumer.on_nack([a, b])  # the repeat of a is not answered again (yet), b is
    assert [int.from_bytes(p[12:14], "big") for p in wire.sent] == [a, b]  # the OSNs
