"""SFU forwarding cost through a real node: server CPU per forwarded packet, loss, fps, first frame.

The bench starts its own embedded Redis and one ``switchboard node --workers W`` subprocess (a token
public key written for it to a temp dir), mints tokens with the private key, and drives the node
only through its public protocols: ``/ws`` signaling (show.create/publish/join/subscribe/answer)
and WebRTC. The load runs in child processes (``python -m sfu.measure``): one aiortc publisher
(640x480 30 fps VP8 near 1.4 Mbit/s + Opus) and groups of viewers that finish ICE/DTLS with aiortc
and then count SRTP packets at the socket without decrypting; ``--sample`` viewers decode every
frame. Only the node's processes are measured (the node and its worker processes, from /proc).

``--fanout python|native`` sets the node's ``sfu.fanout`` (``native`` fails to start without the built
extension); ``--fanout both`` measures both paths in one sitting, each on a fresh node.

``--baseline relay`` runs the same workload, at ``--baseline-viewers`` viewers, against an aiortc
MediaRelay server (``python -m bench.sfu_relay``) in the same run; ``--baseline janus`` against Debian's
Janus 1.1.2 and its VideoRoom (``bench.sfu_janus``: a tuned configuration, Janus's own JSON API), its
process measured as the node's. ``--baseline-only`` measures the baseline alone (its full result).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.netns import ShapedLinks
from bench.sfu_baseline import baseline_keys, baseline_only
from bench.sfu_load import ROOM, measure
from switchboard.embedded import EmbeddedRedis, free_port
from switchboard.ids import RoomId, UserId
from switchboard.tokens import Grants, TokenSigner

DESCRIPTION = "SFU through a node: server CPU us per forwarded packet with N viewers of a 640x480 VP8 + Opus show"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--viewers", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sample", type=int, default=2, help="viewers that decode every frame")
    parser.add_argument("--workers", type=int, default=2, help="SFU worker processes of the node")
    parser.add_argument("--viewers-per-worker", type=int, default=0,
                        help="pipe threshold given to the node (default: viewers spread evenly over the workers)")
    parser.add_argument("--per-process", type=int, default=100, help="viewers per load generator process")
    parser.add_argument("--joins-in-flight", type=int, default=0,
                        help="joins each viewer process starts at once (default 0: all: a join burst)")
    parser.add_argument("--loadgen-nice", type=int, default=10, help="niceness of the counting viewer processes")
    parser.add_argument("--arrival", choices=["kernel", "loop"], default="kernel",
                        help="counting viewers' packet arrival times for their REMB: the kernel's receive time "
                             "(SIOCGSTAMPNS), or time.time() when their event loop reads the packet (as before)")
    parser.add_argument("--warmup", type=float, default=None,
                        help="seconds between the last join and the window (default 4; 40 with --simulcast: aiortc "
                             "viewers' REMB grows ~8 %% a second, so REMB ramps take them from the low layer to "
                             "the top in ~20-35 s)")
    parser.add_argument("--baseline", choices=["relay", "janus"],
                        help="also measure aiortc MediaRelay or Janus's VideoRoom on the same workload")
    parser.add_argument("--baseline-viewers", type=int, default=4)
    parser.add_argument("--baseline-only", action="store_true",
                        help="measure only the baseline (at --baseline-viewers), not the node: its full result")
    parser.add_argument("--profile", type=Path,
                        help="py-spy the server's processes during the window; collapsed stacks under this prefix")
    parser.add_argument("--node-log", action="store_true", help="show the server's log (stderr)")
    parser.add_argument("--fanout", choices=["auto", "python", "native", "both"], default="auto",
                        help="the node's sfu.fanout; both: python then native in one sitting (a fresh node each), "
                             "one line: native's keys, python's under \"python\", their ratio")
    # media quality (issue 17): a simulcast publisher, viewers behind shaped links
    parser.add_argument("--simulcast", action="store_true",
                        help="publish from headless Chromium in three VP8 layers (q/h/f) instead of aiortc")
    parser.add_argument("--simulcast-floor", action="store_true",
                        help="with --simulcast: the same Chromium publisher in ONE full-size encoding (the floor: same "
                             "browser, canvas, viewers and warm-up), then simulcast, then the floor again, each on a "
                             "fresh node; one line: simulcast's keys, the floors under \"floor\" and "
                             "\"floor_after\", ratios to their mean, and the floors' own ratio (the noise)")
    parser.add_argument("--impaired", type=impaired_spec, metavar="K:RATE",
                        help="also K decoding viewers, each in its own network namespace behind tc tbf at RATE "
                             "(e.g. 2:300kbit); the bench makes and removes the namespaces (root)")


# --- impaired viewers: network namespaces behind tc tbf -----------------------------------------------

def impaired_spec(text: str) -> tuple[int, str]:
    count, _, rate = text.partition(":")
    if not count.isdigit() or int(count) < 1 or not rate:
        raise argparse.ArgumentTypeError("K:RATE, e.g. 2:300kbit")
    return int(count), rate


def run(args: argparse.Namespace) -> dict:  # type: ignore[type-arg]
    if args.baseline_only:
        if not args.baseline:
            raise SystemExit("--baseline-only needs --baseline relay|janus")
        return baseline_only(args, measure)
    if getattr(args, "simulcast_floor", False):
        if not args.simulcast or args.fanout == "both":
            raise SystemExit("--simulcast-floor needs --simulcast and one --fanout")
        return _against_floor(args)
    if args.fanout != "both":
        return _run(args, args.fanout)
    python = _run(args, "python")
    native = _run(args, "native")
    ratio = native["server_us_per_packet"] / python["server_us_per_packet"] if python["server_us_per_packet"] else None
    return {**native, "python": python,
            "us_per_packet_native_over_python": round(ratio, 3) if ratio is not None else None}


def _against_floor(args: argparse.Namespace) -> dict:  # type: ignore[type-arg]
    """Floor, simulcast, floor again (A-B-A), each on a fresh node (see :func:`against_floor`)."""
    runs = []
    for layers in (1, 3, 1):
        args.layers = layers
        runs.append(_run(args, args.fanout))
    floor, sim, after = runs
    return against_floor(floor, sim, after, viewers=args.viewers, counting=args.viewers - args.sample)


def against_floor(floor: dict, sim: dict, after: dict, *, viewers: int, counting: int) -> dict:  # type: ignore[type-arg]
    """Simulcast's keys with the floors under ``floor`` and ``floor_after``; each ratio is simulcast's
    figure over the two floors' mean, and ``floor_repeat_ratio`` (the second floor's us per packet over
    the first's: nothing changed between them) is this sitting's noise. ``server_cpu_pct_per_mbps`` is
    each run's CPU per forwarded Mbit/s: the figure per packet counts the same bytes in fewer, larger
    packets as dearer. ``all_settled``: every viewer joined, 29 fps or more, and every counting viewer
    over 900 kbit/s (on the top layer) in all three."""
    for r in (floor, sim, after):
        kbps = r.get("counting_viewer_kbps")
        r["server_cpu_pct_per_mbps"] = round(1000 * r["server_cpu_pct"] / (kbps * counting), 4) if kbps else None

    def over(key: str) -> float | None:
        base = (floor[key] + after[key]) / 2 if floor.get(key) and after.get(key) else None
        return round(sim[key] / base, 3) if base and sim.get(key) is not None else None

    def settled(r: dict) -> bool:  # type: ignore[type-arg]
        return (r["joined"] == viewers and (r["viewer_fps_min"] or 0) >= 29
                and r.get("counting_viewers_over_900_kbps") == counting)

    repeat = (round(after["server_us_per_packet"] / floor["server_us_per_packet"], 3)
              if floor["server_us_per_packet"] else None)
    return {**sim, "floor": floor, "floor_after": after,
            "us_per_packet_over_floor": over("server_us_per_packet"), "server_cpu_over_floor": over("server_cpu_pct"),
            "packets_over_floor": over("packets_forwarded_per_s"),
            "cpu_per_bit_over_floor": over("server_cpu_pct_per_mbps"), "floor_repeat_ratio": repeat,
            "all_settled": all(settled(r) for r in (floor, sim, after))}


def _run(args: argparse.Namespace, fanout: str) -> dict:  # type: ignore[type-arg]
    key = Ed25519PrivateKey.generate()
    signer = TokenSigner(key, issuer="switchboard", ttl_s=3600)
    room = RoomId(ROOM)
    with tempfile.TemporaryDirectory(prefix="bench-sfu-") as tmp:
        pub_pem = Path(tmp) / "token.pub.pem"
        pub_pem.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo))
        tokens = Path(tmp) / "viewers.json"
        extra = args.impaired[0] if getattr(args, "impaired", None) else 0
        n = max(args.viewers + extra, args.baseline_viewers if args.baseline else 0)
        tokens.write_text(json.dumps([signer.sign(Grants(sub=UserId(f"v{i}"), room=room, subscribe=True))
                                      for i in range(n)]))
        publisher = signer.sign(Grants(sub=UserId("broadcaster"), room=room, publish=True, verified=True))
        per_worker = args.viewers_per_worker or math.ceil(args.viewers / max(1, args.workers))
        args.links = ShapedLinks(*args.impaired) if getattr(args, "impaired", None) else None
        redis = EmbeddedRedis(Path(tmp) / "redis")
        redis_url = redis.start()
        port = free_port()
        metrics_port = free_port()
        env = {**os.environ, "SWITCHBOARD_REDIS_URL": redis_url, "SWITCHBOARD_TOKENS_PUBLIC_KEY_FILE": str(pub_pem),
               "SWITCHBOARD_NODE_PORT": str(port), "SWITCHBOARD_DATA_DIR": tmp, "SWITCHBOARD_LOG_LEVEL": "WARNING",
               "SWITCHBOARD_METRICS_NODE_PORT": str(metrics_port),  # other nodes on the box hold the default
               "SWITCHBOARD_NODE_VIEWERS_PER_WORKER": str(per_worker), "SWITCHBOARD_NODE_WS_SEND_QUEUE": "1024",
               "SWITCHBOARD_SFU_FANOUT": fanout}
        host = "127.0.0.1"
        if args.links is not None:  # signaling on the first pair's host end (private), media on every pair's
            host = args.links.links[0][1]
            env["SWITCHBOARD_NODE_HOST"] = host
            env["SWITCHBOARD_NODE_RTC_ADDRESSES"] = ",".join(["127.0.0.1", *(a for _, a, _ in args.links.links)])
        node = subprocess.Popen([sys.executable, "-m", "switchboard", "node", "--workers", str(args.workers)],
                                env=env, stdout=subprocess.PIPE, stderr=None if args.node_log else subprocess.DEVNULL,
                                text=True)
        try:
            assert node.stdout is not None
            line = node.stdout.readline()
            if "listening" not in line:
                raise RuntimeError(f"node did not start: {line!r}")
            args.metrics_port = metrics_port
            result = measure(f"ws://{host}:{port}/ws", node.pid, tokens, publisher, args.viewers, args)
            result["workers"] = args.workers
            result["viewers_per_worker"] = per_worker
            result["fanout"] = fanout
            result["simulcast"] = bool(getattr(args, "simulcast", False)) and getattr(args, "layers", 3) == 3
        finally:
            node.terminate()
            node.wait(20)
            redis.stop()
            if args.links is not None:
                args.links.close()
        if args.baseline:
            result.update(baseline_keys(args, tokens, publisher, measure))
            result.update(over_baseline(result))
    return result


def over_baseline(result: dict[str, Any]) -> dict[str, Any]:
    """The node's CPU per forwarded packet over the baseline's, in the same sitting; and the same split
    in two. ``kernel_floor_over_baseline``: the kernel's part alone (the smaller of the two servers'),
    over the baseline's whole: no server that sends each viewer its own datagram through this kernel
    goes below that ratio. ``user_us_per_packet_over_baseline``: the part the servers' own code spends."""
    ours, base = result["server_us_per_packet"], result["baseline_us_per_packet"]
    if not base:
        return {}
    kernel, base_kernel = result["server_kernel_us_per_packet"], result["baseline_kernel_us_per_packet"]
    out = {"us_per_packet_over_baseline": round(ours / base, 3),
           "kernel_floor_over_baseline": round(min(kernel, base_kernel) / base, 3)}
    if base > base_kernel:
        out["user_us_per_packet_over_baseline"] = round((ours - kernel) / (base - base_kernel), 3)
    return out


def plot(result: dict, path: Path) -> None:  # type: ignore[type-arg]
    import matplotlib.pyplot as plt

    labels = ["switchboard SFU"]
    values = [result["server_us_per_packet"]]
    if "baseline_us_per_packet" in result:
        name = "Janus VideoRoom" if result.get("baseline") == "janus" else "aiortc MediaRelay"
        labels.append(f"{name} ({result['baseline_viewers']} viewers)")
        values.append(result["baseline_us_per_packet"])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(labels, values, color=["tab:blue", "tab:gray"][: len(values)])
    ax.set_yscale("log" if len(values) > 1 else "linear")
    ax.axhline(12, color="tab:red", linestyle="--", label="goal 12 us")
    ax.set_ylabel("server CPU us per forwarded packet")
    ax.set_title(f"{result['viewers']} viewers, {result['packets_forwarded_per_s']:.0f} packets/s")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
