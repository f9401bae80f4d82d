"""Transport-cc feedback: the wire format both ways, the publisher side's bookkeeping, the viewer side's."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sfu import rtcp, twcc

FANOUT_PATHS = ()
"""No Worker or WorkerPool here: the fan-out setting does not reach these tests; one run (tests/conftest.py)."""

arrival_lists = st.lists(st.one_of(st.none(), st.integers(-5_000, 40_000)), min_size=1, max_size=300).filter(
    lambda xs: any(x is not None for x in xs))


def times_of(gaps: list[int | None], start: int = 5_000_000) -> list[int | None]:
    """Arrival times (us) from gaps between received packets; None stays a loss."""
    out: list[int | None] = []
    t = start
    for g in gaps:
        if g is None:
            out.append(None)
        else:
            t += g
            out.append(t)
    return out


@given(arrival_lists, st.integers(0, 0xFFFF), st.integers(0, 255))
def test_feedback_round_trips_to_250us(gaps: list[int | None], base: int, count: int) -> None:
    times = times_of(gaps)
    packet = twcc.build(0x1234, 0x5678, base, count, times)
    assert len(packet) % 4 == 0
    (pt, fmt, body), = list(rtcp.split(packet))
    assert (pt, fmt) == (twcc.RTPFB, twcc.FMT_TWCC)
    fb = twcc.parse(body)
    assert (fb.sender_ssrc, fb.media_ssrc, fb.base_seq, fb.count) == (0x1234, 0x5678, base, count)
    assert [s for s, _ in fb.arrivals] == [(base + i) & 0xFFFF for i in range(len(times))]
    for (_, got), want in zip(fb.arrivals, times, strict=True):
        assert (got is None) == (want is None)
        if want is not None and got is not None:
            assert 0 <= want - got < 2 * twcc.DELTA_US


@given(st.binary(max_size=200))
def test_parse_rejects_garbage_with_value_error_only(body: bytes) -> None:
    try:
        twcc.parse(body)
    except ValueError:
        pass


def test_long_runs_use_run_length_chunks() -> None:
    times = [1_000_000 + 1000 * i for i in range(100)] + [None] * 50
    packet = twcc.build(1, 2, 0, 0, times)
    assert len(packet) < 20 + 2 * 3 + 100 + 4  # 3 chunks, 100 one-byte deltas
    assert sum(at is not None for _, at in twcc.parse(packet[4:]).arrivals) == 100


def test_arrivals_report_every_number_once_holes_as_lost() -> None:
    a = twcc.Arrivals()
    for seq, at in ((65534, 1000), (65535, 2000), (1, 4000), (0, 5000)):  # wraps, 0 comes late
        a.record(seq, at)
    fb = twcc.parse(a.feedback(1, 2)[4:])  # type: ignore[index]
    assert [s for s, _ in fb.arrivals] == [65534, 65535, 0, 1]
    assert all(at is not None for _, at in fb.arrivals)
    a.record(4, 9000)
    fb2 = twcc.parse(a.feedback(1, 2)[4:])  # type: ignore[index]
    assert fb2.base_seq == 2 and [at is None for _, at in fb2.arrivals] == [True, True, False]
    assert fb2.count == fb.count + 1
    a.record(3, 9500)  # after its number was reported: not reported again
    assert a.feedback(1, 2) is None


def test_a_huge_jump_restarts_the_count() -> None:
    a = twcc.Arrivals()
    a.record(10, 1000)
    a.record(10 + twcc.Arrivals.MAX_SPAN + 5, 2000)
    fb = twcc.parse(a.feedback(1, 2)[4:])  # type: ignore[index]
    assert len(fb.arrivals) == 1 and fb.base_seq == 10 + twcc.Arrivals.MAX_SPAN + 5


def test_departures_resolve_feedback_into_send_and_arrival_times() -> None:
    d = twcc.Departures()
    for i in range(5):
        d.next(10.0 + i * 0.01, 1000 + i)
    times: list[int | None] = [20_000_000, None, 20_020_000, 20_030_000, None]
    fb = twcc.parse(twcc.build(1, 2, 1, 0, times)[4:])
    got, lost = d.resolve(fb)
    assert lost == 2
    assert [(round(s, 3), round(a, 3), n) for s, a, n in got] == [
        (10.0, 20.0, 1000), (10.02, 20.02, 1002), (10.03, 20.03, 1003)]
