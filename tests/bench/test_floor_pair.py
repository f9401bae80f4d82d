"""``bench sfu --simulcast-floor``'s arithmetic: floor, simulcast, floor again (A-B-A), each ratio
against the two floors' mean, and the floors' own ratio as the sitting's noise."""

from __future__ import annotations

from typing import Any

from bench.sfu import against_floor


def _run(us: float, cpu: float, pps: float, kbps: float, over_900: int = 62, fps: float = 30.0) -> dict[str, Any]:
    return {"joined": 64, "viewer_fps_min": fps, "counting_viewers_over_900_kbps": over_900,
            "server_us_per_packet": us, "server_cpu_pct": cpu, "packets_forwarded_per_s": pps,
            "counting_viewer_kbps": kbps}


def test_ratios_are_against_the_mean_of_both_floors() -> None:
    out = against_floor(_run(15.0, 22.0, 14600, 1600), _run(16.5, 23.1, 14000, 1600), _run(17.0, 24.0, 14400, 1600),
                        viewers=64, counting=62)
    assert out["us_per_packet_over_floor"] == round(16.5 / 16.0, 3)
    assert out["server_cpu_over_floor"] == round(23.1 / 23.0, 3)
    assert out["packets_over_floor"] == round(14000 / 14500, 3)
    assert out["floor_repeat_ratio"] == round(17.0 / 15.0, 3)
    assert out["server_us_per_packet"] == 16.5  # simulcast's own keys stay at the top
    assert out["floor"]["server_us_per_packet"] == 15.0 and out["floor_after"]["server_us_per_packet"] == 17.0
    assert out["all_settled"] is True


def test_cpu_per_bit_counts_the_bytes_not_the_packets() -> None:
    """The same CPU for the same bytes in fewer packets: dearer per packet, equal per bit."""
    floor = _run(15.0, 22.0, 14600, 1600)
    out = against_floor(floor, _run(15.6, 22.0, 14040, 1600), _run(15.0, 22.0, 14600, 1600), viewers=64, counting=62)
    assert out["us_per_packet_over_floor"] > 1.03
    assert out["cpu_per_bit_over_floor"] == 1.0
    assert out["floor"]["server_cpu_pct_per_mbps"] == round(1000 * 22.0 / (1600 * 62), 4)


def test_a_run_with_a_viewer_below_the_top_layer_is_not_settled() -> None:
    out = against_floor(_run(15.0, 22.0, 14600, 1600), _run(28.7, 38.4, 13400, 1485, over_900=54, fps=15.2),
                        _run(15.0, 22.0, 14600, 1600), viewers=64, counting=62)
    assert out["all_settled"] is False
