"""The load of ``python -m bench sfu``, one measurement against one server: a publisher and groups of
viewers in child processes (``python -m sfu.measure``; ``bench.chrome_publish`` for a simulcast
publisher; impaired viewers in network namespaces), driven over their stdin/stdout line protocol;
only the server's process family is measured. :func:`measure` returns the result's figures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.probes import cpu_s, cpu_split, family, node_counters, pct, rss_mb, udp_rcvbuf_errors

ROOM = "bench"


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
        pids = family(server_pid)
        for p in [pub, *procs]:
            _tell(p, "start")
        for p in [pub, *procs]:
            _expect(p, "started")
        load_pids = [p.pid for p in [pub, *procs]]
        spies = [subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--nonblocking", "-r", "200",
                                   "-f", "raw", "-d", str(int(args.seconds)), "-p", str(pid),
                                   "-o", f"{args.profile}-{pid}.txt"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL) for pid in pids] if args.profile else []
        drops0 = udp_rcvbuf_errors()
        each0 = [cpu_s([p]) for p in pids]
        split0 = cpu_split(pids)
        cpu0, load0, t0 = sum(split0), [cpu_s([p]) for p in load_pids], time.monotonic()
        time.sleep(args.seconds)
        split1 = cpu_split(pids)
        cpu1, load1, elapsed = sum(split1), [cpu_s([p]) for p in load_pids], time.monotonic() - t0
        each1 = [cpu_s([p]) for p in pids]
        drops = udp_rcvbuf_errors() - drops0
        rss = rss_mb(pids)
        # the node's counter sums its live consumers: read it before the viewers leave (up to 5 s old)
        metrics_port = getattr(args, "metrics_port", None)
        node_counts = node_counters(metrics_port, ("sfu_layer_switches", "sfu_duplicate_packets")) if metrics_port \
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
        "peer_closed_after_connect_s": pct([x for r in results for x in r.get("closed_after_s", [])], 0.5),
        "viewer_states": _summed([r.get("states", {}) for r in results]),
        "silent_viewers": sum(r["silent"] for r in results),
        "seconds": args.seconds,
        "packets_forwarded_per_s": round(packets / elapsed, 1),
        "layer_switches": node_counts.get("sfu_layer_switches"),
        "publisher_duplicates_dropped": node_counts.get("sfu_duplicate_packets"),
        "server_us_per_packet": round((cpu1 - cpu0) * 1e6 / max(1, packets), 2),
        "server_kernel_us_per_packet": round((split1[1] - split0[1]) * 1e6 / max(1, packets), 2),
        "counting_viewer_kbps": round(8 * counted / elapsed / counting / 1000, 1) if counting else None,
        **_arrival_clock(results),
        "server_cpu_pct": round(100 * (cpu1 - cpu0) / elapsed, 1),
        "viewer_loss_pct_max": round(max(losses), 3) if losses else None,
        "viewer_fps_min": round(min(fps), 1) if fps else None,
        "first_frame_ms_p95": pct(firsts, 0.95),
        "server_rss_mb": round(rss, 1),
        "server_processes": len(pids),
        "server_cpu_pct_by_process": [round(100 * (b - a) / elapsed, 1) for a, b in zip(each0, each1, strict=True)],
        "viewer_loss_pct_p50": pct(losses, 0.5),
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
    out: dict[str, Any] = {"counting_remb_kbps_p50": pct(rembs, 0.5),
                           "counting_remb_kbps_min": min(rembs, default=None),
                           "counting_bwe_kbps_p50": pct(estimates, 0.5)}
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
    out: dict[str, Any] = {"bwe_kbps_p50": pct(estimates, 0.5), "bwe_viewers": len(estimates)}
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
