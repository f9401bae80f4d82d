"""Probing a viewer's link before a step up (``sfu.probe``), pure: recorded sends, synthetic
transport-cc feedback. A cluster that arrives at the pace it was sent proves that rate; one the link
spreads out proves only what got through; the proof lifts the estimate above the cap by what the
viewer receives, and a viewer that can be probed steps up only on such a proof (never on a trial)."""

from __future__ import annotations

import random

from sfu.bwe import LinkEstimate
from sfu.consumer import Consumer
from sfu.probe import Prober, rate_of
from sfu.producer import Codec, KeyframeRequester, Producer
from sfu.rtp import HEADER, SEQ_TS, payload_offset
from sfu.simulcast import TRIAL_RATIO, UP_HOLD_S, LayerChoice
from sfu.twcc import Departures, Feedback
from sfu.types import PeerId
from tests.sfu.test_extensions_units import Wire

FANOUT_PATHS = ()
"""No Worker or WorkerPool here: the fan-out setting does not reach these tests; one run (tests/conftest.py)."""


def cluster(send_bps: float, link_bps: float, n: int = 20, size: int = 1200) -> list[tuple[float, float, int]]:
    """(send, arrival, size) of ``n`` packets paced at ``send_bps`` through a bottleneck of ``link_bps``."""
    out, free = [], 0.0
    for i in range(n):
        sent = i * size * 8 / send_bps
        free = max(free, sent) + size * 8 / link_bps
        out.append((sent, free + 0.02, size))
    return out


def test_a_cluster_proves_the_rate_it_got_through_at() -> None:
    fast = rate_of([(s, a, n) for s, a, n in cluster(1_000_000, 10_000_000)])
    assert fast is not None and 900_000 <= fast <= 1_100_000
    slow = rate_of([(s, a, n) for s, a, n in cluster(1_000_000, 300_000)])
    assert slow is not None and 250_000 <= slow <= 350_000
    lossy = [(s, None if i % 3 == 0 else a, n) for i, (s, a, n) in enumerate(cluster(1_000_000, 10_000_000))]
    assert rate_of(lossy) == 0.0
    assert rate_of([(0.0, 0.01, 1200)]) is None


def feedback_for(departures: Departures, first: int, arrivals: list[float | None]) -> Feedback:
    return Feedback(1, 2, first, 0, tuple(((first + i) & 0xFFFF, None if a is None else int(a * 1e6))
                                          for i, a in enumerate(arrivals)))


def test_a_prober_judges_its_cluster_from_feedback_and_lifts_the_estimate() -> None:
    for link_bps, proves in ((10_000_000, True), (200_000, False)):
        link = LinkEstimate()
        d = link.departures
        link.estimator.delay_based = link.estimator.loss_based = 150_000.0
        link.source = "transport-cc"
        assert link.prober.due(10.0)
        link.prober.begin(900_000, 10.0)
        first = (d.seq + 1) & 0xFFFF
        packets = cluster(900_000, link_bps)
        for sent, _, size in packets:
            d.next(10.0 + sent, size)
        link.prober.end()
        assert not link.prober.due(10.5)  # one cluster at a time
        link.on_transport_feedback(feedback_for(d, first, [10.0 + a for _, a, _ in packets]), 10.6)
        assert link.prober.cluster is None and len(link.prober.proved) == 1
        if proves:
            assert link.estimator.bitrate >= 800_000
        else:
            assert link.estimator.bitrate <= 250_000
        # a failed cluster doubles the wait before the next (a link under a probe pays for each)
        assert not link.prober.due(11.0) and link.prober.due(12.1) == proves and link.prober.due(14.1)


def test_a_cluster_whose_feedback_never_comes_is_judged_at_its_timeout() -> None:
    d = Departures()
    prober = Prober(d)
    prober.begin(500_000, 0.0)
    for i in range(10):
        d.next(i * 0.02, 1000)
    prober.end()
    assert not prober.due(1.0)
    assert not prober.due(2.1) and prober.cluster is None  # nothing arrived: judged lost (a failure)
    assert prober.due(4.1)  # and the next one waits twice as long


def test_probe_packets_are_rtx_copies_of_what_the_viewer_already_got_from_this_layer() -> None:
    vp8 = Codec("video", "video/VP8", 90000, 96)
    producer = Producer("p", PeerId("pub"), vp8, 1000, KeyframeRequester(lambda: None, 0.0, lambda d, f: None))  # type: ignore[arg-type, return-value]
    wire = Wire()
    consumer = Consumer("c", producer, wire, 4242, 100, 4343, 101, False)  # type: ignore[arg-type]
    rng = random.Random(2)
    seq, ts = 5000, 77

    def frame(key: bool) -> None:
        nonlocal seq, ts
        desc = bytes([0x10, 0x00 if key else 0x01])
        producer.on_rtp(HEADER.pack(0x80, 0x80 | 96, seq, ts, 1000) + desc + bytes(rng.randrange(50, 900)))
        seq, ts = seq + 1, ts + 3000

    for _ in range(10):  # packets before the viewer started: never copied
        frame(False)
    producer.add_consumer(consumer)
    for k in range(30):
        frame(k == 0)
    got = {SEQ_TS.unpack_from(p, 2)[0]: p[payload_offset(p):] for p in wire.sent}
    wire.sent.clear()
    sent = consumer.send_probe(20_000)
    assert sent >= 20_000 and consumer.probed == sent
    assert wire.sent
    for p in wire.sent:
        assert p[1] & 0x7F == 101 and int.from_bytes(p[8:12], "big") == 4343  # the RTX stream
        body = p[payload_offset(p):]
        osn = int.from_bytes(body[:2], "big")
        assert got[osn] == body[2:]  # a copy of a packet the viewer got, at its own number
    no_rtx = Consumer("n", producer, Wire(), 1, 100, 0, None, False)  # type: ignore[arg-type]
    assert no_rtx.send_probe(10_000) == 0


def test_a_probed_viewer_never_steps_up_on_trial_and_steps_up_at_once_on_a_proof() -> None:
    rates = [100_000.0, 450_000.0, 1_000_000.0]
    probed = LayerChoice(probing=True)
    for t in range(int(8 * UP_HOLD_S)):  # held back by what it receives: a trial would go up
        assert probed.choose(TRIAL_RATIO * 1.1 * rates[0], rates, float(t)) == 0
    assert probed.choose(1.3 * rates[1], rates, 100.0) == 1  # a probe proved the next layer
    assert probed.choose(1.3 * rates[1], rates, 101.0) == 1  # one layer at a time
    assert probed.choose(0.95 * rates[1], rates, 102.0) == 1  # a keyframe's swing is no drop
    assert probed.choose(0.5 * rates[1], rates, 103.0) == 0  # congestion is
