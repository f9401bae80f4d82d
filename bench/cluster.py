"""A show on a cluster of nodes: placement, forwarding cost over every node, and recovery from a killed node.

The bench starts its own embedded Redis and Postgres, the control API (``switchboard api``) and N
``switchboard node`` processes, then the load through public protocols only
(``python -m bench.cluster_clients``, on the SDK): one publisher and V viewers, every one placed by
the API's token answer (``node``). Viewers count RTP at the socket (``python -m sfu.cluster_viewers``:
still the SDK's sign-in, placement and rejoin, but no decoding, which costs the load generator far
more than the nodes: ~120 decoding viewers fill this 2-core box); ``--sample K`` of them decode every
frame (``bench.cluster_clients view``), ``--decode`` makes all of them decode. Over ``--seconds`` it
measures all nodes' CPU per video packet the viewers received, the load generator's CPU, each
viewer's loss and fps, and where the viewers are (``viewers_per_node``, from each viewer's
``hello.node``). With ``--kill-node`` it then kills one node's processes with SIGKILL (an edge node
with viewers when there is one, else the show's origin) and measures, per viewer of that node, the
time from the kill to its first frame again on a new peer connection (the SDK asks the API again,
and joins again on the node it names). With ``--viewers-per-node C`` the nodes run the cascade and the origin
takes C viewers, the others go to edges; ``cascade_added_latency_ms_p99`` then compares edge viewers'
frames (decoded, or counted: their marker packet's arrival, the kernel's receive time of it) with an
origin viewer's of the same kind, matched by RTP timestamp (:mod:`bench.cascade_latency`), beside the same
between two origin viewers (``origin_viewers_spread_ms_p99``: the floor); ``arrival_clock`` says which
clock stamped them. Null while no viewer is on an edge. ``--drain-node`` drains the edge with the most
viewers (``--drain-origin``: the show's origin, whose broadcaster moves) as ``switchboard node drain``
does: for that node's viewers the longest wait between two frames from the command on
(``drain_gap_ms_max``), moved, lost, the node's exit; the others' as ``survivors_gap_ms_max``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from secrets import token_urlsafe
from typing import IO, Any

from bench.api import _wait_ready
from bench.cascade_latency import cascade_latency
from bench.cluster_drain import busiest_edge, drain, drain_figures, publisher_steps, wait_exit
from bench.cluster_recovery import breakdown, survivors
from bench.loadgen import niced, set_policy
from bench.mailbox import Mailbox, owned_rooms
from bench.probes import cpu_s as _cpu_s
from bench.probes import family as _family
from bench.probes import pct as _pct
from bench.probes import udp_rcvbuf_errors as _udp_rcvbuf_errors
from switchboard.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from switchboard.keys import KeyPaths, ensure_secrets

DESCRIPTION = "N nodes behind the API's placement: one show, V viewers, CPU per packet, loss, fps, kill -9, drain"
HOST = "bench-cluster-host@example.com"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--viewers", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=10.0, help="the measured window")
    parser.add_argument("--kill-node", action="store_true", help="then kill one node with SIGKILL and time recovery")
    parser.add_argument("--drain-node", action="store_true",
                        help="then drain the edge with the most viewers (switchboard node drain) and time the gap")
    parser.add_argument("--drain-origin", action="store_true", help="with --drain-node: drain the show's origin")
    parser.add_argument("--drain-grace", type=float, default=30.0,
                        help="with --drain-node: the nodes' node.drain_grace_s (without it: 0, no drain on stop)")
    parser.add_argument("--recovery-wait", type=float, default=20.0,
                        help="seconds to wait for viewers after the kill or the drain command")
    parser.add_argument("--per-process", type=int, default=0,
                        help="viewers per load generator process (0: 50 counting, 10 decoding)")
    parser.add_argument("--sample", type=int, default=0,
                        help="viewers (the last ones) that decode every frame; the others count RTP")
    parser.add_argument("--decode", action="store_true", help="every viewer decodes every frame (--sample V)")
    parser.add_argument("--in-flight", type=int, default=2, help="viewers signing up and joining at once, per process")
    parser.add_argument("--size", default="320x240", help="the publisher's colour bars")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--log", action="store_true", help="show the servers' and load generators' logs")
    parser.add_argument("--viewers-per-node", type=int, default=0,
                        help="the origin's viewer cap (SWITCHBOARD_CASCADE_VIEWERS_PER_NODE): further viewers go "
                             "to edges, which pull the show through sealed pipes; 0: no cascade")
    parser.add_argument("--loadgen-nice", type=int, default=10,
                        help="niceness of every load generator process (publisher, counting and decoding "
                             "viewers; bench sfu's default too): the nodes get a core first, as on machines of "
                             "their own (kernel arrival stamps are taken in the sender's turn on loopback, so "
                             "the viewers' own delays are not in the figures); 0: the load generator competes")
    parser.add_argument("--loadgen-policy", choices=("idle", "normal"), default="idle",
                        help="the load generator's scheduling policy over the measuring window: idle "
                             "(SCHED_IDLE: it runs only on a core no node process wants, and a node's worker "
                             "woken by a packet takes the core from it at once; bench/loadgen.py) or normal "
                             "(SCHED_OTHER at --loadgen-nice throughout)")
    parser.add_argument("--worker-slice-us", type=int, default=None,
                        help="the nodes' SFU workers' scheduler slice (SWITCHBOARD_SFU_WORKER_SLICE_US; "
                             "default: the nodes' default)")


def _clients(args: argparse.Namespace, *argv: str, module: str = "bench.cluster_clients") -> subprocess.Popen[str]:
    """One load generator process, at ``--loadgen-nice`` (:mod:`bench.loadgen`)."""
    return subprocess.Popen([sys.executable, "-m", module, *argv], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=None if args.log else subprocess.DEVNULL, text=True,
                            preexec_fn=niced(args.loadgen_nice))


def _expect(proc: subprocess.Popen[str], event: str) -> dict[str, Any]:
    assert proc.stdout is not None
    while line := proc.stdout.readline():
        if line.startswith("{"):
            msg: dict[str, Any] = json.loads(line)
            if msg["event"] == event:
                return msg
    raise RuntimeError(f"load generator {proc.pid} exited before {event!r}")


def _tell(procs: list[subprocess.Popen[str]], command: str) -> None:
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(command + "\n")
        proc.stdin.flush()


def _registry(env: dict[str, str]) -> list[dict[str, Any]]:
    """``switchboard nodes --json``: the registry as an operator sees it."""
    out = subprocess.run([sys.executable, "-m", "switchboard", "nodes", "--json"], env=env, check=True,
                         capture_output=True, text=True, timeout=60).stdout
    return list(json.loads(out))


PORT_RETRIES = 3
"""Node starts again on fresh ports when another process took one of its ports first."""


class Cluster:
    """Redis, Postgres, the API and the nodes of one run. ``close()`` stops what started."""

    def __init__(self, base: Path, args: argparse.Namespace) -> None:
        self.base = base
        self.args = args
        self.redis = EmbeddedRedis(base / "redis")
        self.postgres = EmbeddedPostgres(base / "postgres")
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[IO[bytes]] = []
        self.nodes: dict[str, subprocess.Popen[bytes]] = {}
        """Node id -> its process."""
        self.env: dict[str, str] = {}
        self.smtp_port = free_port()
        self.api = ""
        self.pipe_secret = token_urlsafe(24)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.base / f"{name}.log").open("wb")
        self.logs.append(log)
        proc = subprocess.Popen([sys.executable, "-m", "switchboard", *argv], env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    @property
    def _cascade(self) -> dict[str, str]:
        """The nodes' cascade settings: one secret for the run, the origin's viewer cap."""
        if self.args.viewers_per_node <= 0:
            return {}
        return {"SWITCHBOARD_CASCADE_SECRET": self.pipe_secret,
                "SWITCHBOARD_CASCADE_VIEWERS_PER_NODE": str(self.args.viewers_per_node)}

    @property
    def _slice(self) -> dict[str, str]:
        slice_us = self.args.worker_slice_us
        return {} if slice_us is None else {"SWITCHBOARD_SFU_WORKER_SLICE_US": str(slice_us)}

    def start(self) -> None:
        self.base.chmod(0o711)  # the embedded Postgres may run as another user
        secrets = KeyPaths(self.base / "secrets" / "key.pem", self.base / "secrets" / "key.pub.pem",
                           self.base / "secrets" / "turn")
        ensure_secrets(secrets)
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")},
                    "SWITCHBOARD_REDIS_URL": self.redis.start(), "SWITCHBOARD_LOG_LEVEL": "WARNING",
                    "SWITCHBOARD_TOKENS_PUBLIC_KEY_FILE": str(secrets.public_key)}
        port = free_port()
        api_env = {**self.env, "SWITCHBOARD_DATABASE_URL": self.postgres.start(),
                   "SWITCHBOARD_DATA_DIR": str(self.base / "api"),
                   "SWITCHBOARD_TOKENS_PRIVATE_KEY_FILE": str(secrets.private_key),
                   "SWITCHBOARD_API_PORT": str(port), "SWITCHBOARD_METRICS_API_PORT": str(free_port()),
                   # One client address signs everyone up: lift the per-address limits.
                   "SWITCHBOARD_API_RATE_IP_PER_MIN": "100000000", "SWITCHBOARD_API_AUTH_IP_PER_MIN": "100000000",
                   "SWITCHBOARD_API_LAG_SHED_MS": "5000",  # sign-ups hash passwords: a busy box lags
                   "SWITCHBOARD_API_SMTP_HOST": "127.0.0.1", "SWITCHBOARD_API_SMTP_PORT": str(self.smtp_port)}
        subprocess.run([sys.executable, "-m", "switchboard", "api", "migrate"], env=api_env, check=True,
                       capture_output=True, timeout=180)
        api = self._spawn("api", ["api"], api_env)
        started = [self._start_node(i) for i in range(self.args.nodes)]
        _wait_ready(f"http://127.0.0.1:{port}/readyz", api, timeout_s=120)
        self.api = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        retries = PORT_RETRIES
        while time.monotonic() < deadline:
            entries = _registry(self.env)
            if len(entries) == self.args.nodes:
                break
            for i, (_, proc) in enumerate(started):
                if proc.poll() is None:
                    continue
                log = (self.base / f"node{i}.log").read_text()
                if "already in use" in log and retries > 0:  # a port taken between free_port() and its bind
                    retries -= 1
                    started[i] = self._start_node(i)
                    continue
                logs = "".join((self.base / f"node{j}.log").read_text()[-800:] for j in range(self.args.nodes))
                raise RuntimeError(f"a node exited (the temporary directory goes with this run):\n{logs}")
            time.sleep(0.5)
        else:
            raise RuntimeError("the nodes did not all register")
        nodes = dict(started)
        self.nodes = {e["id"]: nodes[e["url"]] for e in entries}

    def _start_node(self, i: int) -> tuple[str, subprocess.Popen[bytes]]:
        """Node ``i`` on fresh ports: its URL and process."""
        ports = (free_port(), free_port())
        return f"http://127.0.0.1:{ports[0]}", self._spawn(f"node{i}", ["node", "--workers", "1"], {
            **self.env, "SWITCHBOARD_NODE_PORT": str(ports[0]), "SWITCHBOARD_METRICS_NODE_PORT": str(ports[1]),
            "SWITCHBOARD_DATA_DIR": str(self.base / f"node{i}"),
            "SWITCHBOARD_NODE_DRAIN_GRACE_S": str(self.args.drain_grace if self.args.drain_node else 0),
            "SWITCHBOARD_NODE_WS_SEND_QUEUE": "1024", **self._cascade, **self._slice})

    def kill(self, node_id: str) -> float:
        """SIGKILL to the node and its SFU workers at once (a box that dies); returns the unix time."""
        proc = self.nodes[node_id]
        family = _family(proc.pid)
        at = time.time()
        for pid in family:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
        proc.wait()
        return at

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.postgres.stop()
        self.redis.stop()
        for log in self.logs:
            log.close()


def _host_room(api: str, smtp_port: int) -> str:
    async def make() -> str:
        async with Mailbox(smtp_port) as mailbox:
            return (await owned_rooms(f"{api}/api", mailbox, 1, email=HOST))[0]

    return asyncio.run(make())


def measure(cluster: Cluster, args: argparse.Namespace) -> dict[str, Any]:
    room = _host_room(cluster.api, cluster.smtp_port)
    tag = str(int(time.time()))
    pub = _clients(args, "publish", "--api", cluster.api, "--email", HOST, "--password", "bench-host-password",
                   "--room", room, "--size", args.size)
    groups: list[subprocess.Popen[str]] = []
    try:
        published = _expect(pub, "ready")
        if published.get("error"):
            raise RuntimeError(published["error"])
        origin = published["node"]
        groups = _viewer_groups(args, cluster.api, room, tag)
        readies = [_expect(g, "ready") for g in groups]
        placed = [n for r in readies for n in r["nodes"]]
        time.sleep(args.warmup)
        pids = [p for proc in cluster.nodes.values() for p in _family(proc.pid)]
        loaders = [pub.pid, *(g.pid for g in groups)]
        idle = args.loadgen_policy == "idle"
        policy = set_policy(loaders, idle=True) if idle else (0, 0)
        _tell([*groups, pub], "start")
        print(f"bench cluster: measuring for {args.seconds:g} s", file=sys.stderr, flush=True)
        cpu0, load0, drops0, t0 = _cpu_s(pids), _cpu_s(loaders), _udp_rcvbuf_errors(), time.monotonic()
        time.sleep(args.seconds)
        cpu1, load1, drops1, elapsed = _cpu_s(pids), _cpu_s(loaders), _udp_rcvbuf_errors(), time.monotonic() - t0
        _tell([*groups, pub], "window")
        restored = set_policy(loaders, idle=False) if idle else (0, 0)
        killed: dict[str, Any] = {}
        if args.drain_node:
            victim = origin if args.drain_origin else busiest_edge(placed, origin)
            at = drain(cluster.env["SWITCHBOARD_REDIS_URL"], victim)
            _tell(groups, f"mark {at}")
            killed = {"node": victim, "exit_s": wait_exit(cluster.nodes[victim], at, args.recovery_wait), "at": at,
                      "registry_after": len(_registry(cluster.env))}
        elif args.kill_node:
            counts = {n: placed.count(n) for n in set(placed) if n}
            edges = {n: c for n, c in counts.items() if n != origin}
            victim = max(edges, key=lambda n: edges[n]) if edges else origin
            killed = {"node": victim, "role": "edge" if edges else "origin", "viewers": counts.get(victim, 0)}
            at = cluster.kill(victim)
            _tell(groups, f"mark {at}")
            time.sleep(args.recovery_wait)
            killed["registry_after"] = len(_registry(cluster.env))
        _tell(groups, "stop")
        _tell([pub], "stop")
        results = [{**v, "group": i} for i, g in enumerate(groups) for v in _expect(g, "result")["viewers"]]
        publisher = _expect(pub, "result")
    finally:
        for proc in [*groups, pub]:
            try:
                if proc.stdin is not None and not proc.stdin.closed:
                    proc.stdin.close()
                proc.wait(60)
            except (subprocess.TimeoutExpired, OSError):
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
    packets = sum(v["packets"] for v in results)
    decoded = [v["fps"] for v in results if v.get("mode") != "count" and v["error"] is None]
    losses = [v["loss_pct"] for v in results if v["loss_pct"] is not None]
    fps = [v["fps"] for v in results if v["error"] is None]
    per_node = {node_id: placed.count(node_id) for node_id in cluster.nodes}
    result: dict[str, Any] = {
        "nodes": args.nodes,
        "viewers": args.viewers,
        "viewers_joined": sum(1 for n in placed if n),
        "viewers_per_node": per_node,
        "origin": origin,
        "server_us_per_packet": round((cpu1 - cpu0) * 1e6 / max(1, packets), 2),
        "server_cpu_pct": round(100 * (cpu1 - cpu0) / elapsed, 1),
        "loadgen_cpu_pct": round(100 * (load1 - load0) / elapsed, 1), "loadgen_nice": args.loadgen_nice,
        "loadgen_policy": args.loadgen_policy, "loadgen_threads_idle": policy[0],
        "loadgen_threads_left_idle": restored[1],
        "udp_rcvbuf_errors": drops1 - drops0,
        "packets_per_s": round(packets / elapsed, 1),
        "viewers_decoding": sum(1 for v in results if v.get("mode") != "count"),
        **cascade_latency(results, placed, origin),
        "viewer_loss_pct_max": round(max(losses), 3) if losses else None,
        "viewer_fps_min": round(min(fps), 1) if fps else None,
        "viewer_fps_p50": _pct(fps, 0.5),
        "decoded_fps_min": round(min(decoded), 1) if decoded else None,
        "viewers_below_29_fps": sum(1 for f in fps if f < 29),
        "publisher_fps": publisher.get("fps"),
        "viewer_states": dict(Counter(v.get("state") for v in results if v.get("state"))),
        "viewers_told": dict(Counter(t for v in results for t in v.get("told", []))),
        "seconds": args.seconds,
        "join_errors": [e for r in readies for e in r.get("errors", [])][:3],
    }
    if args.drain_node:
        hit = [v for v, n in zip(results, placed, strict=False) if n == killed["node"]]
        result.update({**drain_figures(hit, [v for v, n in zip(results, placed, strict=False) if n != killed["node"]],
                                       killed["node"], killed["exit_s"]), "drained_origin": args.drain_origin,
                       "nodes_after_drain": killed["registry_after"], **publisher_steps(publisher, killed["at"]),
                       "viewers_per_node_after": _after(results)})
    elif args.kill_node:
        hit = [v for v, n in zip(results, placed, strict=False) if n == killed["node"]]
        back = [v["recovery_s"] for v in hit if v["recovery_s"] is not None]
        result.update({
            "killed_node": killed["node"], "killed_role": killed["role"], "killed_viewers": killed["viewers"],
            "recovery_s_p95": _pct(back, 0.95), "recovery_s_max": round(max(back), 2) if back else None,
            "recovery_s_min": round(min(back), 2) if back else None,
            "viewers_lost": len(hit) - len(back),
            "viewers_ended": sum(1 for v in hit if v["ended"]),
            "nodes_after_kill": killed["registry_after"],
            "publisher_rejoins": publisher.get("rejoins"),
            "viewers_per_node_after": _after(results), **breakdown(hit),
            **survivors([v for v, n in zip(results, placed, strict=False) if n != killed["node"]]),
        })
    return result


def _viewer_groups(args: argparse.Namespace, api: str, room: str, tag: str) -> list[subprocess.Popen[str]]:
    """The viewers' processes: counting ones (``sfu.cluster_viewers``), then the decoding sample
    (``bench.cluster_clients view``), each of ``--per-process`` viewers."""
    decoding = args.viewers if args.decode else min(args.sample, args.viewers)
    groups: list[subprocess.Popen[str]] = []
    for module, start, end, default in (("sfu.cluster_viewers", 0, args.viewers - decoding, 50),
                                        ("bench.cluster_clients", args.viewers - decoding, args.viewers, 10)):
        size = args.per_process or default
        for first in range(start, end, size):
            argv = ["--api", api, "--room", room, "--first", str(first), "--count", str(min(size, end - first)),
                    "--tag", tag, "--in-flight", str(args.in_flight)]
            groups.append(_clients(args, *argv, module=module) if module.startswith("sfu") else
                          _clients(args, "view", *argv))
    return groups


def _after(results: list[dict[str, Any]]) -> dict[str, int]:
    """Where the viewers were at the end (their last hello)."""
    out: dict[str, int] = {}
    for v in results:
        if v["node"]:
            out[v["node"]] = out.get(v["node"], 0) + 1
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        cluster = Cluster(Path(tmp), args)
        try:
            cluster.start()
            print(f"bench cluster: {args.nodes} nodes registered, API at {cluster.api}", file=sys.stderr, flush=True)
            return measure(cluster, args)
        finally:
            cluster.close()


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    ids = list(result["viewers_per_node"])
    ax.bar([i[-6:] for i in ids], [result["viewers_per_node"][i] for i in ids], label="before")
    if "viewers_per_node_after" in result:
        what = f"killing {result['killed_node'][-6:]}" if "killed_node" in result else \
            f"draining {result['drained_node'][-6:]}"
        ax.bar([i[-6:] for i in ids], [result["viewers_per_node_after"].get(i, 0) for i in ids], alpha=0.5,
               label=f"after {what}")
    ax.set_ylabel("viewers")
    ax.set_title(f"{result['viewers']} viewers on {result['nodes']} nodes, "
                 f"{result['server_us_per_packet']} us/packet")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
