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



def test_the_load_generator_goes_idle_policy_for_the_window_and_back_keeping_its_niceness() -> None:
    """``--loadgen-policy idle``: every thread of every load generator process (and its children) is
    SCHED_IDLE over the measuring window, SCHED_OTHER again after it, at the niceness it started with."""
    import os
    import subprocess
    import sys
    import time

    from bench.loadgen import niced, set_policy

    script = ("import os, sys, threading, time, subprocess\n"
              "threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
              "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
              "print(child.pid, flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, preexec_fn=niced(5))
    try:
        assert proc.stdout is not None
        child = int(proc.stdout.readline())
        time.sleep(0.2)  # the thread has started

        def policies() -> set[tuple[int, int]]:
            tids = [int(t) for pid in (proc.pid, child) for t in os.listdir(f"/proc/{pid}/task")]
            return {(os.sched_getscheduler(t), os.getpriority(os.PRIO_PROCESS, t)) for t in tids}

        mine = os.getpriority(os.PRIO_PROCESS, 0)
        assert policies() == {(os.SCHED_OTHER, mine + 5)}
        done, refused = set_policy([proc.pid], idle=True)
        assert (done, refused) == (3, 0)  # the main thread, its sleeper and the child
        assert policies() == {(os.SCHED_IDLE, mine + 5)}
        assert set_policy([proc.pid], idle=False) == (3, 0)
        assert policies() == {(os.SCHED_OTHER, mine + 5)}
    finally:
        proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert niced(0) is None
