"""Signaling load: N authenticated sockets on one ``switchboard node`` process, then 1:1 relay.

The bench starts its own embedded Redis and one ``switchboard node`` subprocess (public key written
for it, ``SWITCHBOARD_TOKENS_PUBLIC_KEY_FILE``), mints tokens itself, and speaks only WebSocket
from several client processes. Sockets are paired; each pair runs a 1:1 call (invite, accept) and
the callers send ``call.chat`` lines carrying a send timestamp at a steady total rate; the callees
measure relay latency (same machine clock).

What is measured, and how:
- the node runs alone in its process (uvloop, as ``switchboard node`` always does); the clients run
  in ``--clients`` other processes (uvloop each), so the node's figures are the node's;
- ``node_rss_kib_per_connection`` is the node process's VmRSS once every socket has had its
  ``hello``, minus its VmRSS after a warm-up (WARMUP_PAIRS pairs that connect, call and chat,
  and stay open), divided by the sockets opened;
- relay latency is end to end: the sender's ``time.time()`` in the line, the receiver's on arrival
  (client send, node receive/validate/route/encode/send, client receive), for every line;
- the relay starts only when every client process has its calls set up (an event, not a guess);
- ``errors``: failed connects, failed call setups, error frames, and lines sent but not received.

``--baseline bare`` then runs the same clients against a bare aiohttp + uvloop relay
(bench/bare_relay.py) in the same sitting: ``bare_*`` figures and ``relay_p99_ratio`` (ours / bare).

Overload mode (``--storm N``): ``--storm-at`` seconds into the relay, two more client processes open
N sockets at once. Reported: ``shed_pct`` (sockets refused with an ``overloaded`` frame),
``storm_accepted``, ``storm_errors`` (anything else), ``storm_connect_p99_ms`` (accepted ones),
``accepted_p99_ms`` (relay latency of the open calls while the storm lasts), ``before_storm_p99_ms``,
and ``recovery_s``: from the storm's end until the relay's p99 (per 250 ms) stays within 2x the
pre-storm figure (at least 5 ms).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.loadgen import niced
from bench.probes import cpu_s
from bench.signaling_clients import Warmup, client_main, storm_main
from switchboard.embedded import EmbeddedRedis, free_port
from switchboard.ids import UserId
from switchboard.tokens import Grants, TokenSigner

DESCRIPTION = "N sockets on one node process, then 1:1 call.chat relay at a steady rate"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--connections", type=int, default=1000, help="sockets (even number)")
    parser.add_argument("--seconds", type=float, default=10.0, help="relay phase duration")
    parser.add_argument("--rate", type=float, default=5000.0, help="relayed messages per second, total")
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--node-log", action="store_true", help="show the node's log (stderr)")
    parser.add_argument("--timeline", action="store_true", help="print p50/p99/max relay latency per second (stderr)")
    parser.add_argument("--baseline", choices=["none", "bare"], default="none",
                        help="also measure a bare aiohttp+uvloop relay in the same run")
    parser.add_argument("--storm", type=int, default=0, help="overload: sockets opened at once during the relay")
    parser.add_argument("--storm-at", type=float, default=3.0, help="seconds into the relay the storm starts")
    parser.add_argument("--profile", type=Path,
                        help="py-spy the server during the relay; raw collapsed stacks to PATH-<tag>.txt")
    parser.add_argument("--node-nice", type=int, default=0, metavar="N",
                        help="run the node (and its SFU worker) at this nice value, e.g. -10: on a small shared "
                             "box, CPU for the node before the load generators, which stand in for other machines")
    parser.add_argument("--node-env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra SWITCHBOARD_* settings for the node (repeatable)")


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _timeline(samples: list[tuple[float, float]]) -> None:
    """Per second of send time: messages, p50, p99 and max latency (to see stalls, e.g. GC pauses)."""
    if not samples:
        return
    first = int(samples[0][0])
    buckets: dict[int, list[float]] = {}
    for sent_at, lat in samples:
        buckets.setdefault(int(sent_at) - first, []).append(lat)
    for second, lats in sorted(buckets.items()):
        print(f"t+{second:3d}s n={len(lats):5d} p50={_pct(lats, 0.5) * 1e3:8.2f}ms p99={_pct(lats, 0.99) * 1e3:8.2f}ms "
              f"max={max(lats) * 1e3:8.2f}ms (at {first + second})", file=sys.stderr)


def _recovery_s(samples: list[tuple[float, float]], after: float, limit_s: float,
                bucket_s: float = 0.25) -> float | None:
    """Seconds after ``after`` until every later bucket's p99 is within ``limit_s``."""
    buckets: dict[int, list[float]] = {}
    for sent_at, lat in samples:
        if sent_at >= after:
            buckets.setdefault(int((sent_at - after) / bucket_s), []).append(lat)
    good_from = None
    for index in sorted(buckets):
        if _pct(buckets[index], 0.99) <= limit_s:
            good_from = index if good_from is None else good_from
        else:
            good_from = None
    return None if good_from is None else round(good_from * bucket_s, 2)


def _measure(args: argparse.Namespace, url: str, pid: int, signer: TokenSigner, tag: str) -> dict[str, Any]:
    """One sitting against the server at ``url`` (process ``pid``): warm-up, sockets, calls, relay."""
    n = args.connections - args.connections % 2
    warm = Warmup(url, signer)
    warm.start()  # the server's one-time costs (lazy imports, caches) stay out of the per-socket figure
    try:
        time.sleep(0.5)
        rss_before = _rss_kib(pid)
        users = [f"{tag}u{i}" for i in range(n)]
        tokens = {u: signer.sign(Grants(sub=UserId(u), verified=True)) for u in users}
        pairs = [(users[i], tokens[users[i]], users[i + 1], tokens[users[i + 1]]) for i in range(0, n, 2)]
        per = [pairs[i::args.clients] for i in range(args.clients)]
        ctx = mp.get_context("spawn")
        out: Any = ctx.Queue()
        go: Any = ctx.Event()
        setup_budget = 30 + n / 200
        t0 = time.monotonic()
        procs = [ctx.Process(target=client_main, args=(url, chunk, args.seconds,
                 args.rate * len(chunk) / max(1, len(pairs)), go, out)) for chunk in per if chunk]
        storm_tokens = [signer.sign(Grants(sub=UserId(f"{tag}storm{i}"), verified=True)) for i in range(args.storm)]
        storms = [ctx.Process(target=storm_main, args=(url, storm_tokens[i::2], args.storm_at, args.seconds, go, out))
                  for i in range(2) if storm_tokens[i::2]]
        for p in procs + storms:
            p.start()
        pending: list[tuple[Any, ...]] = []

        def collect(kind: str, count: int, timeout: float) -> list[tuple[Any, ...]]:
            got = [m for m in pending if m[0] == kind]
            pending[:] = [m for m in pending if m[0] != kind]
            while len(got) < count:
                m = out.get(timeout=timeout)
                (got if m[0] == kind else pending).append(m)
            return got

        conn = collect("connected", len(procs), setup_budget + 60)
        connected, connect_s = sum(m[1] for m in conn), max(m[2] for m in conn)
        connect_wall = time.monotonic() - t0
        rss_after = _rss_kib(pid)
        ready = sum(m[1] for m in collect("ready", len(procs), setup_budget + 60))
        cpu = cpu_s([pid])
        print(f"bench signaling: relay starts (server pid {pid})", file=sys.stderr, flush=True)
        go.set()
        spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--nonblocking", "-r", "250",
                                "-f", "raw", "-d", str(int(args.seconds)), "-p", str(pid),
                                "-o", f"{args.profile}-{tag}.txt"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL) if args.profile else None
        done = collect("done", len(procs), setup_budget + args.seconds + 120)
        if spy is not None:
            spy.wait(60)
        cpu = cpu_s([pid]) - cpu
        storm = collect("storm", len(storms), 120)
        sent, errors = sum(m[1] for m in done), sum(m[3] for m in done)
        samples = sorted(x for m in done for x in m[2])
        latencies = [lat for _, lat in samples]
        if args.timeline:
            _timeline(samples)
        for p in procs + storms:
            p.join(30)
    finally:
        warm.stop()
    result: dict[str, Any] = {
        "connections": connected,
        "node_rss_kib_per_connection": round((rss_after - rss_before) / max(1, connected), 2),
        "connect_per_s": round(connected / max(connect_s, 1e-9)),
        "messages_per_s": round(len(latencies) / args.seconds),
        "relay_p50_ms": round(_pct(latencies, 0.50) * 1000, 3),
        "relay_p99_ms": round(_pct(latencies, 0.99) * 1000, 3),
        "relay_max_ms": round(max(latencies, default=float("nan")) * 1000, 3),
        "errors": errors + (n - connected) + (len(pairs) - ready) + (sent - len(latencies)),
        "server_cpu_pct": round(100 * cpu / args.seconds, 1),
        "target_rate": args.rate,
        "sent": sent,
        "calls": ready,
        "connect_wall_s": round(connect_wall, 2),
        "node_rss_kib": rss_after,
    }
    if storm:
        start, end = min(m[1] for m in storm), max(m[2] for m in storm)
        accepted = [x for m in storm for x in m[3]]
        shed, storm_errors = sum(m[4] for m in storm), sum(m[5] for m in storm)
        before = [lat for at, lat in samples if at < start]
        during = [lat for at, lat in samples if start <= at <= end]
        before_p99 = _pct(before, 0.99)
        result.update({
            "storm": args.storm,
            "storm_accepted": len(accepted),
            "shed_pct": round(100 * shed / max(1, args.storm), 2),
            "storm_errors": storm_errors,
            "storm_s": round(end - start, 2),
            "storm_connect_p99_ms": round(_pct(accepted, 0.99) * 1000, 2),
            "accepted_p99_ms": round(_pct(during, 0.99) * 1000, 3),
            "before_storm_p99_ms": round(before_p99 * 1000, 3),
            "recovery_s": _recovery_s(samples, end, max(0.005, 2 * before_p99)),
        })
    return result


def _start(cmd: list[str], env: dict[str, str], show_log: bool, nice: int = 0) -> subprocess.Popen[str]:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=None if show_log else subprocess.DEVNULL,
                            text=True, preexec_fn=niced(nice))
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening" not in line:
        proc.kill()
        raise RuntimeError(f"{cmd} did not start: {line!r}")
    return proc


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run(args: argparse.Namespace) -> dict:  # type: ignore[type-arg]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 2 * (args.connections + args.storm) + 4096))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    key = Ed25519PrivateKey.generate()
    signer = TokenSigner(key, issuer="switchboard", ttl_s=3600)
    with tempfile.TemporaryDirectory(prefix="bench-signaling-") as tmp:
        pub = Path(tmp) / "token.pub.pem"
        pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo))
        redis = EmbeddedRedis(Path(tmp) / "redis")
        redis_url = redis.start()
        try:
            port = free_port()
            env = {**os.environ, "SWITCHBOARD_REDIS_URL": redis_url, "SWITCHBOARD_TOKENS_PUBLIC_KEY_FILE": str(pub),
                   "SWITCHBOARD_NODE_PORT": str(port), "SWITCHBOARD_DATA_DIR": tmp,
                   "SWITCHBOARD_METRICS_NODE_PORT": str(free_port()),  # other nodes on the box hold the default
                   "SWITCHBOARD_LOG_LEVEL": "WARNING", "SWITCHBOARD_NODE_WS_SEND_QUEUE": "1024",
                   **dict(kv.split("=", 1) for kv in args.node_env)}
            node = _start([sys.executable, "-m", "switchboard", "node", "--workers", "1"], env, args.node_log,
                          args.node_nice)
            try:
                result = _measure(args, f"http://127.0.0.1:{port}/ws", node.pid, signer, "n")
            finally:
                _stop(node)
        finally:
            redis.stop()
    if args.baseline == "bare":
        port = free_port()
        bare = _start([sys.executable, "-m", "bench.bare_relay", str(port)], dict(os.environ), args.node_log,
                      args.node_nice)
        try:
            theirs = _measure(args, f"http://127.0.0.1:{port}/ws", bare.pid, signer, "b")
        finally:
            _stop(bare)
        for name in ("connections", "connect_per_s", "messages_per_s", "relay_p50_ms", "relay_p99_ms",
                     "relay_max_ms", "errors", "server_cpu_pct", "node_rss_kib_per_connection"):
            result[f"bare_{name}"] = theirs[name]
        for name in ("accepted_p99_ms", "shed_pct", "recovery_s", "storm_errors", "storm_connect_p99_ms"):
            if name in theirs:
                result[f"bare_{name}"] = theirs[name]
        result["relay_p99_ratio"] = round(result["relay_p99_ms"] / max(1e-3, theirs["relay_p99_ms"]), 2)
    return result
