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
    assert result["viewer_fps_min"] > 0  # the decoding viewer decoded the publisher's VP8 through Janus
    assert result["publisher_alive"]
