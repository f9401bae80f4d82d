"""Control API under load: room tokens (and some chat messages) at a fixed request rate.

Starts its own ``switchboard api`` process against embedded Redis and Postgres, makes users over
HTTP, then sends requests open-loop (on a schedule, not waiting for answers) for ``--seconds``
with a lean HTTP client (bench/http_load.py), so the client leaves the cores to the server.

Phases, in one run against one server process:
- ``--floor-rps``: ``GET /healthz`` (the cheapest route: the HTTP stack's own floor) first;
- ``--normal-rps``: a normal phase of the main route before the load, and again right after it
  (the overload's aftermath: ``after_*`` and ``recovery_s``);
- ``--rps``: the measured phase. Above capacity (overload mode) it reports ``accepted_p99_ms``
  (2xx answers) and ``shed_pct`` (503s); any other 5xx counts in ``errors``.
The server's CPU time per request (``/proc/<pid>/stat``) is reported per phase.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

from bench import http_load
from bench.mailbox import Mailbox, owned_rooms
from switchboard.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from switchboard.keys import KeyPaths, ensure_secrets

DESCRIPTION = "control API: room token and chat message latency at a fixed request rate"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rps", type=float, default=500.0, help="requests per second to send")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the measured run")
    parser.add_argument("--users", type=int, default=100, help="accounts the load is spread over")
    parser.add_argument("--message-share", type=float, default=0.1, help="share of requests that post a message")
    parser.add_argument("--route", choices=["token", "ws-token"], default="token",
                        help="the token route measured (the rest of the load, --message-share, posts messages)")
    parser.add_argument("--floor-rps", type=float, default=0.0, help="first measure GET /healthz at this rate")
    parser.add_argument("--normal-rps", type=float, default=0.0,
                        help="a normal phase at this rate before and after the measured one (recovery)")
    parser.add_argument("--normal-seconds", type=float, default=5.0, help="length of each normal phase")
    parser.add_argument("--connections", type=int, default=256, help="client connections at most")
    parser.add_argument("--client-procs", type=int, default=1,
                        help="client processes sharing each phase's rate (a saturated client measures itself)")
    parser.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra SWITCHBOARD_* settings for the server (repeatable)")


def _pct(samples: list[float], q: float) -> float | None:
    if not samples:
        return None
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3, 2)


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"switchboard api exited with {proc.returncode}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        time.sleep(0.2)
    raise RuntimeError("switchboard api did not become ready")


async def _json(session: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> Any:
    for _ in range(30):  # a 503 (the server shedding) is retried after its Retry-After
        async with session.request(method, url, **kw) as resp:
            body = await resp.json(content_type=None)
            if resp.status == 503:
                await asyncio.sleep(float(resp.headers.get("Retry-After", "1")))
                continue
            if resp.status >= 300:
                raise RuntimeError(f"{method} {url}: {resp.status} {body}")
            return body
    raise RuntimeError(f"{method} {url}: still 503")


async def _setup(base: str, users: int, smtp_port: int) -> tuple[list[str], list[str], list[str]]:
    """Tokens of ``users`` new accounts, one conversation per pair of them, and 50 rooms owned by
    one verified host (its code read from the API's mail by ``bench.mailbox``)."""
    gate = asyncio.Semaphore(8)
    async with Mailbox(smtp_port) as mailbox, aiohttp.ClientSession() as session:
        rooms = await owned_rooms(base, mailbox, 50)

        async def one(i: int) -> tuple[str, str]:
            async with gate:
                creds = {"email": f"bench{i}@example.com", "password": f"bench-password-{i}"}
                await _json(session, "POST", f"{base}/auth/register", json=creds)
                login = await _json(session, "POST", f"{base}/auth/login", json=creds)
                return login["user_id"], login["access_token"]

        made = await asyncio.gather(*(one(i) for i in range(users)))
        tokens = [t for _, t in made]
        convs = []
        for i in range(0, users - 1, 2):
            conv = await _json(session, "POST", f"{base}/conversations", json={"members": [made[i + 1][0]]},
                               headers={"Authorization": f"Bearer {tokens[i]}"})
            convs.append(conv["id"])
    return tokens, convs, rooms


def _requests(port: int, tokens: list[str], convs: list[str], rooms: list[str], route: str,
              message_share: float) -> list[bytes]:
    """The request mix, pre-built: mostly token requests, every n-th a chat message."""
    every = max(1, round(1 / message_share)) if message_share > 0 else 0
    out = []
    for i in range(max(len(tokens), 200)):
        if every and i % every == 0 and convs:
            user = 2 * (i % len(convs))
            path, body = f"/api/conversations/{convs[i % len(convs)]}/messages", {"text": f"bench {i}"}
        elif route == "ws-token":
            user, path, body = i % len(tokens), "/api/ws-token", {}
        else:
            user, path, body = i % len(tokens), f"/api/rooms/{rooms[i % len(rooms)]}/token", {"role": "viewer"}
        headers = {"Authorization": f"Bearer {tokens[user]}", "Content-Type": "application/json"}
        out.append(http_load.build("POST", "127.0.0.1", port, path, headers, json.dumps(body).encode()))
    return out


def _summary(outcomes: list[http_load.Outcome], seconds: float, cpu_s: float, prefix: str) -> dict[str, Any]:
    ok = [o.elapsed for o in outcomes if 200 <= o.status < 300]
    shed = sum(1 for o in outcomes if o.status == 503)
    by_status: dict[str, int] = {}
    for o in outcomes:
        by_status[str(o.status or "connection-failed")] = by_status.get(str(o.status or "connection-failed"), 0) + 1
    errors = len(outcomes) - len(ok) - shed
    return {
        f"{prefix}rps_achieved": round(len(ok) / seconds, 1),
        f"{prefix}p50_ms": _pct(ok, 0.50),
        f"{prefix}p95_ms": _pct(ok, 0.95),
        f"{prefix}p99_ms": _pct(ok, 0.99),
        f"{prefix}shed_pct": round(100 * shed / max(1, len(outcomes)), 2),
        f"{prefix}errors": errors,
        f"{prefix}statuses": by_status,
        f"{prefix}server_cpu_ms_per_req": round(1e3 * cpu_s / max(1, len(outcomes)), 3),
        f"{prefix}server_cpu_pct": round(100 * cpu_s / seconds, 1),
    }


def _histogram(port: int) -> dict[float, float]:
    """The server's own latency histogram of the API's routes (``http_request_seconds``): le -> count."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            text = resp.read().decode()
    except OSError:  # metrics served elsewhere (an internal listener): no server-side figure
        return {}
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith("http_request_seconds_bucket{") and 'route="/api/' in line:
            le = line.split('le="', 1)[1].split('"', 1)[0]
            bound = float("inf") if le == "+Inf" else float(le)
            buckets[bound] = buckets.get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
    return buckets


def _server_p99_ms(before: dict[float, float], after: dict[float, float], accepted: int) -> float | None:
    """An upper bound of the accepted requests' p99 as the server timed them (handler in to response
    out; not the time in kernel buffers): the smallest bucket bound with at most 1% of the accepted
    requests above it. Refusals take microseconds, so they never sit in the tail."""
    if not accepted:
        return None
    total = after.get(float("inf"), 0.0) - before.get(float("inf"), 0.0)
    for bound in sorted(after):
        above = total - (after[bound] - before.get(bound, 0.0))
        if above <= 0.01 * accepted:
            return None if bound == float("inf") else round(bound * 1e3, 1)
    return None


def _recovery_s(outcomes: list[http_load.Outcome], normal_p99_ms: float | None, bucket_s: float = 0.25) -> float | None:
    """Seconds after the load stopped until every later bucket of the after phase is normal again:
    no 503, no error, p99 within 2x the before phase's (at least 50 ms: half the 100 ms bound)."""
    if not outcomes:
        return None
    limit = max(50.0, 2 * (normal_p99_ms or 0.0)) / 1e3
    t0 = outcomes[0].started
    buckets: dict[int, list[http_load.Outcome]] = {}
    for o in outcomes:
        buckets.setdefault(int((o.started - t0) / bucket_s), []).append(o)
    good_from = None
    for index in sorted(buckets):
        group = buckets[index]
        lat = sorted(o.elapsed for o in group)
        fine = all(200 <= o.status < 300 for o in group) and lat[min(len(lat) - 1, int(0.99 * len(lat)))] <= limit
        if fine and good_from is None:
            good_from = index
        elif not fine:
            good_from = None
    return None if good_from is None else round(good_from * bucket_s, 2)


async def _phases(args: argparse.Namespace, port: int, metrics_port: int, pid: int, tokens: list[str],
                  convs: list[str], rooms: list[str]) -> dict[str, Any]:
    pool = http_load.Pool("127.0.0.1", port, max_connections=args.connections)
    main = _requests(port, tokens, convs, rooms, args.route, args.message_share)
    result: dict[str, Any] = {}

    async def phase(requests: list[bytes], rps: float, seconds: float, prefix: str) -> list[http_load.Outcome]:
        before = await asyncio.to_thread(_histogram, metrics_port)
        cpu = _cpu_s(pid)
        if args.client_procs > 1:
            outcomes = await asyncio.to_thread(http_load.run_phase, "127.0.0.1", port, requests, rps, seconds,
                                               args.client_procs, args.connections)
        else:
            outcomes = await http_load.open_loop(pool, requests, rps, seconds)
        cpu = _cpu_s(pid) - cpu
        after = await asyncio.to_thread(_histogram, metrics_port)
        result.update(_summary(outcomes, seconds, cpu, prefix))
        ok = sum(1 for o in outcomes if 200 <= o.status < 300)
        result[f"{prefix}server_accepted_p99_ms_at_most"] = _server_p99_ms(before, after, ok)
        return outcomes

    try:
        await phase(main, min(args.rps, 50.0), 1.0, "warmup_")  # connections, caches
        if args.floor_rps > 0:
            await phase([http_load.build("GET", "127.0.0.1", port, "/healthz")], args.floor_rps, args.seconds,
                        "floor_")
        if args.normal_rps > 0:
            await phase(main, args.normal_rps, args.normal_seconds, "before_")
        measured = await phase(main, args.rps, args.seconds, "")
        if args.normal_rps > 0:
            after = await phase(main, args.normal_rps, args.normal_seconds, "after_")
            result["recovery_s"] = _recovery_s(after, result.get("before_p99_ms"))
    finally:
        pool.close()
    result["accepted_p99_ms"] = result["p99_ms"]
    result["token_samples_ms"] = [round(o.elapsed * 1e3, 2) for o in measured[:: max(1, len(measured) // 2000)]
                                  if 200 <= o.status < 300]
    for key in [k for k in result if k.startswith("warmup_")]:
        del result[key]
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        data = Path(tmp)
        data.chmod(0o711)  # the embedded Postgres may run as another user
        redis, postgres = EmbeddedRedis(data / "redis"), EmbeddedPostgres(data / "postgres")
        proc: subprocess.Popen[bytes] | None = None
        try:
            redis_url, database_url = redis.start(), postgres.start()
            ensure_secrets(KeyPaths(data / "secrets" / "key.pem", data / "secrets" / "key.pub.pem",
                                    data / "secrets" / "turn"))
            port, smtp_port, metrics_port = free_port(), free_port(), free_port()
            env = {
                **os.environ,
                "SWITCHBOARD_REDIS_URL": redis_url,
                "SWITCHBOARD_DATABASE_URL": database_url,
                "SWITCHBOARD_DATA_DIR": str(data),
                "SWITCHBOARD_TOKENS_PRIVATE_KEY_FILE": str(data / "secrets" / "key.pem"),
                "SWITCHBOARD_TOKENS_PUBLIC_KEY_FILE": str(data / "secrets" / "key.pub.pem"),
                "SWITCHBOARD_API_PORT": str(port),
                # One client address sends everything here: lift the per-address limit, keep the per-user one.
                "SWITCHBOARD_API_RATE_IP_PER_MIN": "100000000",
                "SWITCHBOARD_API_AUTH_IP_PER_MIN": "100000000",
                "SWITCHBOARD_API_SMTP_HOST": "127.0.0.1",  # bench.mailbox: the code that verifies the rooms' owner
                "SWITCHBOARD_API_SMTP_PORT": str(smtp_port),
                "SWITCHBOARD_METRICS_API_PORT": str(metrics_port),  # the server's own histogram, read per phase
                "SWITCHBOARD_LOG_LEVEL": "WARNING",
                **dict(kv.split("=", 1) for kv in args.server_env),
            }
            cmd = [sys.executable, "-m", "switchboard", "api"]
            subprocess.run([*cmd, "migrate"], env=env, check=True, capture_output=True, timeout=120)
            log = (data / "api.log").open("wb")
            proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
            _wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
            base = f"http://127.0.0.1:{port}/api"
            tokens, convs, rooms = asyncio.run(_setup(base, args.users, smtp_port))
            print(f"bench api: load starts (server pid {proc.pid})", file=sys.stderr, flush=True)
            figures = asyncio.run(_phases(args, port, metrics_port, proc.pid, tokens, convs, rooms))
            return {"rps_target": args.rps, "seconds": args.seconds, "route": args.route, "users": args.users,
                    "message_share": args.message_share, **figures}
        finally:
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            postgres.stop()
            redis.stop()


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.hist(result["token_samples_ms"], bins=60)
    ax.set_xlabel("room token latency (ms)")
    ax.set_ylabel("requests")
    ax.set_title(f"{result['rps_achieved']}/{result['rps_target']} req/s, p95 {result['p95_ms']} ms, "
                 f"shed {result['shed_pct']}%")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


