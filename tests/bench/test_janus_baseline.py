"""``python -m bench sfu --baseline janus`` end to end at a tiny size, so the Janus driver cannot rot:
a real Janus (Debian's, on the bench's generated configuration), the real aiortc publisher and
viewers of sfu/measure.py speaking Janus's JSON API, Janus's CPU read from /proc."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.janus
def test_the_janus_baseline_forwards_the_show_and_is_measured(tmp_path: Path) -> None:
    out = tmp_path / "janus.json"
    run = subprocess.run([sys.executable, "-m", "bench", "sfu", "--baseline", "janus", "--baseline-only",
                          "--baseline-viewers", "2", "--sample", "1", "--seconds", "3", "--warmup", "2",
                          "--json", str(out)], capture_output=True, text=True, timeout=240, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["server"] == "janus"
    assert result["joined"] == 2 and result["viewers_connected"] == 2
    assert result["server_processes"] == 1  # Janus alone: one process, its threads in its /proc figures
    assert result["silent_viewers"] == 0  # the counting viewer counted Janus's packets at its socket
    assert result["packets_forwarded_per_s"] > 0
    assert result["server_us_per_packet"] > 0
    assert 0 <= result["server_kernel_us_per_packet"] <= result["server_us_per_packet"]  # /proc's stime
    assert result["viewer_fps_min"] > 0  # the decoding viewer decoded the publisher's VP8 through Janus
    assert result["publisher_alive"]


def test_the_ratios_to_the_baseline_split_the_kernel_from_the_servers_own_code() -> None:
    from bench.sfu import over_baseline

    got = over_baseline({"server_us_per_packet": 8.0, "server_kernel_us_per_packet": 5.5,
                         "baseline_us_per_packet": 10.0, "baseline_kernel_us_per_packet": 6.0})
    # the kernel alone charges the smaller of the two 5.5 us a packet: 0.55 of the baseline's whole
    assert got == {"us_per_packet_over_baseline": 0.8, "kernel_floor_over_baseline": 0.55,
                   "user_us_per_packet_over_baseline": 0.625}
    assert over_baseline({"server_us_per_packet": 8.0, "server_kernel_us_per_packet": 5.5,
                          "baseline_us_per_packet": 0.0, "baseline_kernel_us_per_packet": 0.0}) == {}
