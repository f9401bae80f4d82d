"""SFU forwarding cost: server CPU per forwarded packet, loss, fps and first frame for N viewers.

Until signaling's /ws exists, this runs the SFU's own measurement entry (``python -m sfu.measure``)
as a child process: it starts the node's worker processes (the same WorkerPool the node owns) and
drives them in-process. The bench itself imports no plane, only runs that command.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

DESCRIPTION = "SFU: server CPU us per forwarded packet with N viewers of a 640x480 VP8 + Opus show"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--viewers", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sample", type=int, default=2, help="viewers that decode every frame")
    parser.add_argument("--workers", type=int, default=1, help="SFU worker processes")
    parser.add_argument("--baseline", choices=["relay"], help="also measure aiortc MediaRelay (not implemented yet)")


def run(args: argparse.Namespace) -> dict:  # type: ignore[type-arg]
    if args.baseline:
        raise SystemExit("bench sfu: --baseline relay is not implemented yet")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "sfu.measure", "--viewers", str(args.viewers), "--seconds", str(args.seconds),
               "--sample", str(args.sample), "--workers", str(args.workers), "--json", str(out)]
        subprocess.run(cmd, check=True, timeout=args.seconds + 60 + args.viewers, stdout=subprocess.DEVNULL)
        result: dict = json.loads(out.read_text())  # type: ignore[type-arg]
    return result


def plot(result: dict, path: Path) -> None:  # type: ignore[type-arg]
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(["server us/packet"], [result["server_us_per_packet"]], color="tab:blue")
    ax.axhline(12, color="tab:red", linestyle="--", label="goal 12 us")
    ax.set_title(f"{result['viewers']} viewers, {result['packets_forwarded_per_s']:.0f} packets/s")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
