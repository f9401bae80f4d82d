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
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.netns import ShapedLinks
from bench.sfu_baseline import baseline_keys, baseline_only
from switchboard.embedded import EmbeddedRedis, free_port
from switchboard.ids import RoomId, UserId
from switchboard.tokens import Grants, TokenSigner

DESCRIPTION = "SFU through a node: server CPU us per forwarded packet with N viewers of a 640x480 VP8 + Opus show"
ROOM = "bench"


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
                        help="with --simulcast: first the same Chromium publisher in ONE full-size encoding (the "
                             "floor: same browser, canvas, viewers and warm-up), then simulcast, each on a fresh "
                             "node; one line: simulcast's keys, the floor's under \"floor\", their us/packet ratio")
    parser.add_argument("--impaired", type=impaired_spec, metavar="K:RATE",
                        help="also K decoding viewers, each in its own network namespace behind tc tbf at RATE "
                             "(e.g. 2:300kbit); the bench makes and removes the namespaces (root)")


# --- the server's processes, from /proc -------------------------------------------------------------

def _family(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def _cpu_s(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _udp_rcvbuf_errors() -> int:
    """Datagrams the kernel dropped because a receiving socket's buffer was full (all sockets)."""
    rows = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines() if line.startswith("Udp:")]
    return int(rows[1][rows[0].index("RcvbufErrors")])


def _rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


# --- impaired viewers: network namespaces behind tc tbf -----------------------------------------------

def impaired_spec(text: str) -> tuple[int, str]:
    count, _, rate = text.partition(":")
    if not count.isdigit() or int(count) < 1 or not rate:
        raise argparse.ArgumentTypeError("K:RATE, e.g. 2:300kbit")
    return int(count), rate


def _node_counters(metrics_port: int, names: tuple[str, ...]) -> dict[str, int | None]:
    """The node's counters ``<name>_total`` (polled by the node from its workers every few seconds)."""
    import urllib.request

    found: dict[str, int | None] = dict.fromkeys(names)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return found
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name.endswith("_total") and name[:-6] in found:
            found[name[:-6]] = int(float(value))
    return found


# --- load -----------------------------------------------------------------------------------------

def _spawn(args: list[str], log: bool) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "sfu.measure", *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=None if log else subprocess.DEVNULL, text=True)


def _expect(proc: subprocess.Popen[str], event: str) -> dict[str, Any]:
    assert proc.stdout is not None
    while True:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"load generator {proc.pid} exited before {event!r}")
        if line.startswith("{"):
            msg: dict[str, Any] = json.loads(line)
            if msg["event"] == event:
                return msg


def _tell(proc: subprocess.Popen[str], command: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(command + "\n")
    proc.stdin.flush()


def _pct(values: list[float], q: float) -> float | None:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1) if ordered else None


def _summed(counts: list[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for c in counts:
        for k, n in c.items():
            total[k] = total.get(k, 0) + n
    return total


def measure(url: str, server_pid: int, tokens: Path, publisher_token: str, viewers: int,
            args: argparse.Namespace) -> dict[str, Any]:
    """One publisher and ``viewers`` viewers against the server at ``url``; only ``server_pid``'s family counts."""
    procs: list[subprocess.Popen[str]] = []
    if getattr(args, "simulcast", False) and url.startswith("ws"):
        pub = subprocess.Popen([sys.executable, "-m", "bench.chrome_publish", "--signal", url, "--token",
                                publisher_token, "--room", ROOM, "--layers", str(getattr(args, "layers", 3))],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=None if args.node_log else subprocess.DEVNULL, text=True)
    else:
        pub = _spawn(["publish", "--signal", url, "--token", publisher_token, "--room", ROOM], args.node_log)
    impaired: list[subprocess.Popen[str]] = []
    try:
        _expect(pub, "ready")
        # Counting viewers run niced: the harness must not take CPU from the publisher or the node.
        # The decoding sample joins last (under full load), in its own process at normal priority.
        sample = min(args.sample, viewers)
        counting = viewers - sample
        for first in range(0, counting, args.per_process):
            procs.append(_spawn(["view", "--signal", url, "--tokens-file", str(tokens), "--room", ROOM,
                                 "--first", str(first), "--count", str(min(args.per_process, counting - first)),
                                 "--nice", str(args.loadgen_nice), "--in-flight", str(args.joins_in_flight),
                                 "--arrival", getattr(args, "arrival", "kernel")],
                                args.node_log))
        joins_t0 = time.monotonic()
        readies = [_expect(p, "ready") for p in procs]
        joined = sum(r["joined"] for r in readies)
        join_errors = [e for r in readies for e in r.get("errors", [])]
        joins_s = time.monotonic() - joins_t0
        if sample:
            procs.append(_spawn(["view", "--signal", url, "--tokens-file", str(tokens), "--room", ROOM,
                                 "--first", str(counting), "--count", str(sample), "--sample", str(sample)],
                                args.node_log))
            ready = _expect(procs[-1], "ready")
            joined += ready["joined"]
            join_errors += ready.get("errors", [])
        links = getattr(args, "links", None)
        for i, (ns, _, _) in enumerate(links.links if links is not None and url.startswith("ws") else []):
            impaired.append(subprocess.Popen(
                ["ip", "netns", "exec", ns, sys.executable, "-m", "sfu.measure", "view",
                 "--signal", url, "--tokens-file", str(tokens), "--room", ROOM,
                 "--first", str(viewers + i), "--count", "1", "--sample", "1"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=None if args.node_log else subprocess.DEVNULL, text=True))
        for p in impaired:
            ready = _expect(p, "ready")
            join_errors += ready.get("errors", [])
        procs += impaired
        time.sleep(args.warmup if args.warmup is not None else 40.0 if getattr(args, "simulcast", False) else 4.0)
        pids = _family(server_pid)
        for p in [pub, *procs]:
            _tell(p, "start")
        for p in [pub, *procs]:
            _expect(p, "started")
        load_pids = [p.pid for p in [pub, *procs]]
        spies = [subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--nonblocking", "-r", "200",
                                   "-f", "raw", "-d", str(int(args.seconds)), "-p", str(pid),
                                   "-o", f"{args.profile}-{pid}.txt"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL) for pid in pids] if args.profile else []
        drops0 = _udp_rcvbuf_errors()
        each0 = [_cpu_s([p]) for p in pids]
        cpu0, load0, t0 = _cpu_s(pids), [_cpu_s([p]) for p in load_pids], time.monotonic()
        time.sleep(args.seconds)
        cpu1, load1, elapsed = _cpu_s(pids), [_cpu_s([p]) for p in load_pids], time.monotonic() - t0
        each1 = [_cpu_s([p]) for p in pids]
        drops = _udp_rcvbuf_errors() - drops0
        rss = _rss_mb(pids)
        # the node's counter sums its live consumers: read it before the viewers leave (up to 5 s old)
        metrics_port = getattr(args, "metrics_port", None)
        node_counts = _node_counters(metrics_port, ("sfu_layer_switches", "sfu_duplicate_packets")) if metrics_port \
            else {}
        for spy in spies:
            spy.wait(60)
        for p in [*procs, pub]:  # viewers first: what they were told must not include the publisher's leaving
            _tell(p, "stop")
        pub_result = _expect(pub, "result")
        publisher_fps = pub_result["fps"]
        every = [_expect(p, "result") for p in procs]
        results = every[:len(every) - len(impaired)]
        hurt = every[len(every) - len(impaired):]
    finally:
        for p in [*procs, pub]:
            if p.poll() is None:
                with_stop = p.stdin is not None and not p.stdin.closed
                if with_stop:
                    try:
                        _tell(p, "stop")
                        p.stdin.close()  # type: ignore[union-attr]
                    except OSError:
                        pass
        for p in [*procs, pub]:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    packets = sum(r["packets"] for r in results)
    counting = sum(r.get("counting", 0) for r in results)
    counted = sum(r.get("counting_octets", 0) for r in results)
    fps = [f for r in results for f in r["fps"]]
    firsts = [f for r in results for f in r["first_frame_ms"]]
    losses = [x for r in results for x in r["loss_pct"]]
    return {
        "viewers": viewers,
        "joined": joined,
        "publisher_alive": bool(pub_result.get("alive")) and publisher_fps > 0,
        "publisher_died_after_s": pub_result.get("died_after_s"),
        "publisher_told": pub_result.get("told", []),
        "viewers_told_media_stopped": sum(r.get("told_media_stopped", 0) for r in results),
        "viewers_connected": sum(r.get("connected", 0) for r in results),
        "join_burst_s": round(joins_s, 1),
        "join_retries": sum(r.get("retries", 0) for r in results),
        "connect_retries": sum(r.get("reconnects", 0) for r in results),
        "rejoins": sum(r.get("rejoins", 0) for r in results),
        "join_errors": join_errors[:6],
        "viewers_shed": sum(r.get("shed", 0) for r in results),
        "viewers_told_peer_closed": sum(r.get("told_peer_closed", 0) for r in results),
        "peer_closed_reasons": _summed([r.get("closed_reasons", {}) for r in results]),
        "peer_closed_after_connect_s": _pct([x for r in results for x in r.get("closed_after_s", [])], 0.5),
        "viewer_states": _summed([r.get("states", {}) for r in results]),
        "silent_viewers": sum(r["silent"] for r in results),
        "seconds": args.seconds,
        "packets_forwarded_per_s": round(packets / elapsed, 1),
        "layer_switches": node_counts.get("sfu_layer_switches"),
        "publisher_duplicates_dropped": node_counts.get("sfu_duplicate_packets"),
        "server_us_per_packet": round((cpu1 - cpu0) * 1e6 / max(1, packets), 2),
        "counting_viewer_kbps": round(8 * counted / elapsed / counting / 1000, 1) if counting else None,
        **_arrival_clock(results),
        "server_cpu_pct": round(100 * (cpu1 - cpu0) / elapsed, 1),
        "viewer_loss_pct_max": round(max(losses), 3) if losses else None,
        "viewer_fps_min": round(min(fps), 1) if fps else None,
        "first_frame_ms_p95": _pct(firsts, 0.95),
        "server_rss_mb": round(rss, 1),
        "server_processes": len(pids),
        "server_cpu_pct_by_process": [round(100 * (b - a) / elapsed, 1) for a, b in zip(each0, each1, strict=True)],
        "viewer_loss_pct_p50": _pct(losses, 0.5),
        "udp_rcvbuf_drops_per_s": round(drops / elapsed, 1),
        "viewers_over_1pct_loss": sum(1 for x in losses if x > 1),
        "publisher_fps": round(publisher_fps, 1),
        "sample_fps": [round(f, 1) for f in fps],
        "sample_packets_lost": [x for r in results for x in r.get("decoder_lost", [])],
        "publisher_cpu_pct": round(100 * (load1[0] - load0[0]) / elapsed, 1),
        "loadgen_cpu_pct": [round(100 * (b - a) / elapsed, 1) for a, b in zip(load0[1:], load1[1:], strict=True)],
        **_quality(pub_result, results, hurt),
    }


def _arrival_clock(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Which clock stamped the counting viewers' packets for their REMB: ``kernel`` (the socket's
    receive time), ``time.time`` (the kernel gave none: read by the viewer's event loop) or ``mixed``;
    the last REMB each counting viewer sent (p50, min: kbit/s) and the SFU's estimate of its link
    (``show.stats``, p50)."""
    kernel = sum(r.get("arrival_kernel", 0) for r in results)
    loop = sum(r.get("arrival_loop", 0) for r in results)
    rembs = [x for r in results for x in r.get("remb_kbps", [])]
    estimates = [x for r in results for x in r.get("counting_estimate_kbps", [])]
    out: dict[str, Any] = {"counting_remb_kbps_p50": _pct(rembs, 0.5),
                           "counting_remb_kbps_min": min(rembs, default=None),
                           "counting_bwe_kbps_p50": _pct(estimates, 0.5)}
    each = [x for r in results for x in r.get("counting_kbps", [])]
    if each:  # one viewer's rate tells its layer (an average of two layers tells neither)
        out.update({"counting_viewer_kbps_min": min(each), "counting_viewer_kbps_max": max(each),
                    "counting_viewers_over_900_kbps": sum(1 for x in each if x > 900)})
    if not kernel + loop:
        return {**out, "arrival_clock": None}
    return {**out, "arrival_clock": "mixed" if kernel and loop else "kernel" if kernel else "time.time",
            "arrival_kernel_pct": round(100 * kernel / (kernel + loop), 2)}


def _quality(pub_result: dict[str, Any], results: list[dict[str, Any]], hurt: list[dict[str, Any]]) -> dict[str, Any]:
    """Media quality figures (issue 17): the impaired viewers' fps and longest freeze, the SFU's
    estimates of the decoding viewers' links (``show.stats``), the simulcast publisher's encodings."""
    estimates = [e for r in [*results, *hurt] for e in r.get("estimate_kbps", [])]
    out: dict[str, Any] = {"bwe_kbps_p50": _pct(estimates, 0.5), "bwe_viewers": len(estimates)}
    if hurt:
        fps = [f for r in hurt for f in r["fps"]]
        freezes = [f for r in hurt for f in r.get("freeze_ms", [])]
        out.update({"impaired_viewers": len(hurt),
                    "viewer_fps_min_impaired": round(min(fps), 1) if fps else None,
                    "freeze_ms_max_impaired": max(freezes) if freezes else None,
                    "impaired_fps": [round(f, 1) for f in fps], "impaired_freeze_ms": freezes,
                    "impaired_estimate_kbps": [e for r in hurt for e in r.get("estimate_kbps", [])]})
    if "fps_by_rid" in pub_result:
        out.update({"publisher_fps_by_rid": pub_result["fps_by_rid"],
                    "publisher_kbps_by_rid": pub_result.get("kbps_by_rid"),
                    "publisher_target_kbps_by_rid": pub_result.get("target_kbps_by_rid"),
                    "publisher_qp_by_rid": pub_result.get("qp_by_rid"),
                    "publisher_size_by_rid": pub_result.get("size_by_rid"),
                    "publisher_available_outgoing_bitrate": pub_result.get("available_outgoing_bitrate")})
    return out


def run(args: argparse.Namespace) -> dict:  # type: ignore[type-arg]
    if args.baseline_only:
        if not args.baseline:
            raise SystemExit("--baseline-only needs --baseline relay|janus")
        return baseline_only(args, measure)
    if getattr(args, "simulcast_floor", False):
        if not args.simulcast or args.fanout == "both":
            raise SystemExit("--simulcast-floor needs --simulcast and one --fanout")
        args.layers = 1
        floor = _run(args, args.fanout)
        args.layers = 3
        sim = _run(args, args.fanout)
        ratio = sim["server_us_per_packet"] / floor["server_us_per_packet"] if floor["server_us_per_packet"] else None
        return {**sim, "floor": floor, "us_per_packet_over_floor": round(ratio, 3) if ratio is not None else None}
    if args.fanout != "both":
        return _run(args, args.fanout)
    python = _run(args, "python")
    native = _run(args, "native")
    ratio = native["server_us_per_packet"] / python["server_us_per_packet"] if python["server_us_per_packet"] else None
    return {**native, "python": python,
            "us_per_packet_native_over_python": round(ratio, 3) if ratio is not None else None}


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
            if result["baseline_us_per_packet"]:
                result["us_per_packet_over_baseline"] = round(
                    result["server_us_per_packet"] / result["baseline_us_per_packet"], 3)
    return result


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
