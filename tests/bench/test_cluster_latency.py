"""``bench cluster``'s cascade figures from viewers' frames: the kernel-stamped-only figure leaves out
the frames a load generator's loop stamped (late by its own lateness), the main figure keeps them."""

from __future__ import annotations

from typing import Any

from bench.cascade_latency import cascade_latency

ORIGIN, EDGE = "node_a", "node_b"


def viewer(node: str, offset: int, delay_ms: float, loop: dict[int, float] | None = None) -> dict[str, Any]:
    """A counting viewer's 100 frames at 30 fps, arriving ``delay_ms`` after the origin's first
    viewer; ``loop``: frame index -> its extra lateness, stamped by the loop (not the kernel)."""
    loop = loop or {}
    frames = [[1000.0 + i / 30 + (delay_ms + loop.get(i, 0.0)) / 1000, (offset + 3000 * i) & 0xFFFFFFFF]
              for i in range(100)]
    return {"mode": "count", "group": 0, "node": node, "frames": frames,
            "frames_kernel_stamped": 100 - len(loop), "frames_loop_stamped": len(loop),
            "frames_loop_ts": [frames[i][1] for i in loop]}


def test_loop_stamped_frames_are_left_out_of_the_kernel_stamped_figure_only() -> None:
    late = {i: 12.0 for i in range(0, 100, 20)}  # 5 % of the edge viewer's frames read 12 ms late
    results = [viewer(ORIGIN, 7, 0.0), viewer(ORIGIN, 99, 0.2), viewer(EDGE, 12345, 1.0, late)]
    got = cascade_latency(results, [ORIGIN, ORIGIN, EDGE], ORIGIN)
    assert got["arrival_clock"] == "mixed"
    assert got["cascade_added_latency_ms_p99"] == 13.0  # every frame: the loop's lateness is in it
    assert got["cascade_added_latency_ms_p99_kernel_stamped"] == 1.0
    assert got["cascade_added_latency_ms_p50_kernel_stamped"] == 1.0
    assert got["origin_viewers_spread_ms_p99"] == 0.2


def test_without_loop_stamps_there_is_no_second_figure() -> None:
    results = [viewer(ORIGIN, 7, 0.0), viewer(EDGE, 12345, 1.5)]
    got = cascade_latency(results, [ORIGIN, EDGE], ORIGIN)
    assert got["arrival_clock"] == "kernel" and got["cascade_added_latency_ms_p99"] == 1.5
    assert "cascade_added_latency_ms_p99_kernel_stamped" not in got
