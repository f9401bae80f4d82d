"""The viewer-side estimate over synthetic transport-cc feedback: a queue that grows makes it fall,
loss makes it fall, a clean link makes it rise, slowly."""

from __future__ import annotations

from collections.abc import Callable

from sfu.bwe import Estimator, Limits, slope

FANOUT_PATHS = ()
"""No Worker or WorkerPool here: the fan-out setting does not reach these tests; one run (tests/conftest.py)."""

PACKET = 1200


def feed(est: Estimator, seconds: float, rate: Callable[[Estimator], float], *,
         queue_ms_per_s: float = 0.0, loss_every: int = 0, start: float = 0.0) -> float:
    """Send at ``rate(est)`` bit/s (paced) for ``seconds`` from ``start``, one feedback per 100 ms.

    The one-way delay grows by ``queue_ms_per_s`` each second (a queue filling); every
    ``loss_every``-th packet is lost. Returns the time at the end."""
    t = start
    n = 0
    end = start + seconds
    while t < end:
        packets: list[tuple[float, float, int]] = []
        lost = 0
        stop = t + 0.1
        while t < stop:
            n += 1
            if loss_every and n % loss_every == 0:
                lost += 1
            else:
                packets.append((t, t + 0.03 + (t - start) * queue_ms_per_s / 1000, PACKET))
            t += PACKET * 8 / max(rate(est), 10_000)
        est.on_feedback(packets, lost, t + 0.03)
    return t


def at_estimate(est: Estimator) -> float:
    return float(est.bitrate)


def test_a_clean_link_makes_the_estimate_rise_slowly() -> None:
    est = Estimator(Limits(start=500_000))
    feed(est, 5.0, at_estimate)
    assert 500_000 < est.bitrate < 500_000 * 1.08 ** 6  # at most ~8 % a second
    assert est.trend.state == "normal"


def test_a_growing_queue_makes_the_estimate_fall() -> None:
    est = Estimator(Limits(start=2_000_000))
    t = feed(est, 2.0, lambda e: 1_000_000)
    before = est.bitrate
    feed(est, 2.0, lambda e: 1_000_000, queue_ms_per_s=100, start=t)
    assert est.overuses >= 1
    assert est.bitrate < 0.9 * min(before, 1_000_000)


def test_loss_makes_the_estimate_fall_and_little_loss_does_not() -> None:
    lossy = Estimator(Limits(start=1_000_000))
    feed(lossy, 3.0, lambda e: 1_000_000, loss_every=4)  # 25 %
    assert lossy.bitrate < 700_000
    assert 0.2 < lossy.loss < 0.3
    light = Estimator(Limits(start=1_000_000))
    feed(light, 3.0, lambda e: 1_000_000, loss_every=100)  # 1 %
    assert light.bitrate >= 1_000_000


def test_remb_caps_the_estimate_when_there_is_no_transport_cc() -> None:
    est = Estimator(Limits(start=1_000_000))
    est.on_remb(300_000)
    assert est.bitrate == 300_000
    est.on_loss(0.5, 1.0)
    assert est.bitrate == 225_000  # the loss side falls from what the estimate was (REMB's cap)
    est.on_remb(5_000_000)
    assert est.bitrate < 1_000_000


def test_the_estimate_stays_within_its_limits() -> None:
    est = Estimator(Limits(start=100_000, minimum=80_000, maximum=120_000))
    feed(est, 3.0, lambda e: 100_000, loss_every=2)
    assert est.bitrate == 80_000
    est2 = Estimator(Limits(start=100_000, minimum=80_000, maximum=120_000))
    feed(est2, 20.0, at_estimate)
    assert est2.bitrate == 120_000


def test_slope_is_least_squares() -> None:
    assert slope([(0, 1), (1, 3), (2, 5)]) == 2
    assert slope([(1, 1), (1, 2)]) == 0


def test_a_link_prefers_transport_cc_and_reads_remb_and_loss_otherwise() -> None:
    from sfu import twcc
    from sfu.bwe import LinkEstimate

    link = LinkEstimate(Limits(start=1_000_000))
    assert link.stats()["available_outgoing_bitrate"] is None  # no feedback yet: nothing to show
    link.on_remb(400_000, 1.0)
    link.on_receiver_loss([128], 1.0)  # 50 % lost
    assert link.source == "remb" and link.stats()["available_outgoing_bitrate"] == 300_000
    for i in range(3):
        link.departures.next(2.0 + i * 0.01, 1000)
    link.on_transport_feedback(twcc.parse(twcc.build(1, 2, 1, 0, [3_000_000, 3_010_000, None])[4:]), 2.1)
    assert link.source == "transport-cc" and link.estimator.remb is None
    link.on_remb(100_000, 2.2)  # ignored from now on
    link.on_receiver_loss([255], 2.2)
    assert link.estimator.remb is None and link.estimator.loss == 0.5  # the RR before, not this one


def test_round_trip_from_a_receiver_report_echoing_our_sender_report() -> None:
    from sfu import rtcp
    from sfu.bwe import RoundTrip

    rt = RoundTrip()
    sr = rtcp.build_sr(1, rtcp.ntp_from_unix(1_700_000_000.25), 0, 0, 0)
    rt.on_sender_report(sr, 10.0)
    lsr = int.from_bytes(sr[10:14], "big")
    rt.on_delays([(lsr ^ 1, 0)], 10.5)  # an SR we never sent: ignored
    assert rt.rtt is None
    rt.on_delays([(lsr, 65536 // 2)], 10.6)  # held 0.5 s by the viewer: 0.1 s on the wire
    assert rt.rtt is not None and abs(rt.rtt - 0.1) < 1e-3
    for k in range(RoundTrip.KEEP + 1):
        rt.on_sender_report(rtcp.build_sr(1, rtcp.ntp_from_unix(1_700_000_001.0 + k), 0, 0, 0), 11.0 + k)
    assert len(rt.sent) == RoundTrip.KEEP and lsr not in rt.sent


def test_a_link_given_other_departures_probes_with_them_too() -> None:
    """The native fan-out numbers packets in C: the estimate and the prober must both read that
    numbering (a prober left on the Python one judged no cluster and the viewer never went up)."""
    from sfu.bwe import LinkEstimate
    from sfu.twcc import Departures

    link = LinkEstimate(Limits(start=1_000_000))
    theirs = Departures()
    link.use_departures(theirs)
    assert link.departures is theirs and link.prober.departures is theirs
