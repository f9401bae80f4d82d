"""The baselines of ``python -m bench sfu``: the same workload against another server, measured as
the node is (its process tree from /proc, packets counted at the viewers).

``relay``: an aiortc MediaRelay server (:mod:`bench.sfu_relay`). ``janus``: Debian's Janus with its
VideoRoom on a tuned configuration (:mod:`bench.sfu_janus`). The bench's ``measure`` is passed in.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.sfu_janus import JanusServer
from switchboard.embedded import free_port

Measure = Callable[[str, int, Path, str, int, argparse.Namespace], dict[str, Any]]
"""``bench.sfu_load.measure(url, server_pid, tokens, publisher_token, viewers, args)``."""


def baseline_keys(args: argparse.Namespace, tokens: Path, publisher: str, measure: Measure) -> dict[str, Any]:
    """The baseline's figures, as ``baseline_*`` keys of the node's result."""
    base = measure_baseline(args, tokens, publisher, measure)
    return {"baseline": args.baseline, "baseline_us_per_packet": base["server_us_per_packet"],
            "baseline_kernel_us_per_packet": base["server_kernel_us_per_packet"],
            "baseline_viewers": base["viewers"], "baseline_joined": base["joined"],
            "baseline_packets_forwarded_per_s": base["packets_forwarded_per_s"],
            "baseline_server_cpu_pct": base["server_cpu_pct"], "baseline_viewer_fps_min": base["viewer_fps_min"],
            "baseline_viewer_loss_pct_max": base["viewer_loss_pct_max"],
            "baseline_first_frame_ms_p95": base["first_frame_ms_p95"],
            "baseline_counting_viewer_kbps": base["counting_viewer_kbps"]}


def baseline_only(args: argparse.Namespace, measure: Measure) -> dict[str, Any]:
    """The baseline alone, its full result: the publisher's and viewers' tokens are not read by it
    (the viewers' file is only counted)."""
    with tempfile.TemporaryDirectory(prefix="bench-sfu-") as tmp:
        tokens = Path(tmp) / "viewers.json"
        tokens.write_text(json.dumps([f"v{i}" for i in range(args.baseline_viewers)]))
        result = measure_baseline(args, tokens, "broadcaster", measure)
    return {**result, "server": args.baseline}


def measure_baseline(args: argparse.Namespace, tokens: Path, publisher: str, measure: Measure) -> dict[str, Any]:
    if args.baseline == "janus":
        with JanusServer(log=args.node_log) as janus:
            return measure(janus.url, janus.pid, tokens, publisher, args.baseline_viewers, args)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "bench.sfu_relay", "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=None if args.node_log else subprocess.DEVNULL, text=True)
    try:
        assert server.stdout is not None
        if "listening" not in server.stdout.readline():
            raise RuntimeError("relay baseline did not start")
        return measure(f"http://127.0.0.1:{port}", server.pid, tokens, publisher, args.baseline_viewers, args)
    finally:
        server.terminate()
        server.wait(20)
