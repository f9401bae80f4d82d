"""Matchmaker throughput, waits and invariants with real ``switchboard matchmaker`` processes.

Starts an embedded Redis, loads ``--tickets`` tickets (a realistic mix: countries, ages, tags,
locations, 20% premium with filters, some block sets) in the documented Redis format
(``switchboard.keyspace``: ``mm:ticket:{user}`` JSON + ``mm:queue``), starts ``--processes``
matchmaker processes, lets them drain the backlog, then keeps new tickets (and requeued pairs,
which must not be rematched) arriving for ``--arrival-seconds``. Pairs are read back from the
events stream and checked independently of the matchmaker's code; waits and pairs/s are timed to
the delivery of both ``match.found`` messages on the users' channels, on the bench's own clock.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import redis

from switchboard import keyspace
from switchboard.embedded import EmbeddedRedis, free_port

DESCRIPTION = "random-chat pairing: pairs/s with N waiting, waits, double/incompatible/rematch counts"
COUNTRIES = {"US": (39, -98, 0.25), "IN": (22, 79, 0.14), "BR": (-10, -52, 0.10), "GB": (53, -2, 0.08),
             "DE": (51, 10, 0.08), "FR": (46, 2, 0.07), "MX": (23, -102, 0.06), "TR": (39, 35, 0.05),
             "PH": (12, 122, 0.05), "ID": (-2, 118, 0.04), "CA": (56, -106, 0.04), "ES": (40, -4, 0.04)}
TAGS = [f"tag{i}" for i in range(30)]
TTL_MS = 600_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tickets", type=int, default=10_000, help="tickets waiting when the matchmakers start")
    parser.add_argument("--processes", type=int, default=1, help="matchmaker processes")
    parser.add_argument("--arrival-rate", type=float, default=1000.0, help="new tickets per second after the backlog")
    parser.add_argument("--arrival-seconds", type=float, default=4.0, help="how long new tickets keep arriving")
    parser.add_argument("--requeue", type=float, default=0.1, help="share of backlog pairs that both come back")
    parser.add_argument("--seed", type=int, default=1)


def _ticket(rng: np.random.Generator, uid: str) -> dict:  # type: ignore[type-arg]
    names = list(COUNTRIES)
    weights = np.array([COUNTRIES[c][2] for c in names])
    country = str(rng.choice(names, p=weights / weights.sum()))
    age = int(np.clip(rng.gamma(3.0, 5.0) + 18, 18, 80))
    lat = lon = None
    if rng.random() < 0.6:
        clat, clon, _ = COUNTRIES[country]
        lat, lon = float(np.clip(clat + rng.normal(0, 4), -89, 89)), float((clon + rng.normal(0, 6) + 180) % 360 - 180)
    premium = bool(rng.random() < 0.2)
    filters: dict[str, object] = {"countries": [], "age_min": 18, "age_max": 120, "max_km": None, "tags": []}
    if rng.random() < 0.2:
        filters["countries"] = sorted({country, *rng.choice(names, size=int(rng.integers(0, 3)))})
    tags = sorted({str(t) for t in rng.choice(TAGS, size=int(rng.integers(1, 5)), replace=False)})
    if premium:
        filters["age_min"] = max(18, age - int(rng.integers(3, 15)))
        filters["age_max"] = age + int(rng.integers(3, 20))
        if lat is not None and rng.random() < 0.5:
            filters["max_km"] = float(rng.choice([500, 1000, 3000]))
        if rng.random() < 0.3:
            filters["tags"] = [str(rng.choice(TAGS[:8]))]
    return {"user_id": uid, "country": country, "age": age, "lat": lat, "lon": lon, "tags": tags,
            "premium": premium, "filters": filters, "profile": {"display_name": uid}}


def _km(a: dict, b: dict) -> float:  # type: ignore[type-arg]
    la1, lo1, la2, lo2 = map(math.radians, (a["lat"], a["lon"], b["lat"], b["lon"]))
    h = math.sin((la2 - la1) / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    return 2 * 6371.0 * math.asin(min(1.0, math.sqrt(h)))


def _accepts(a: dict, b: dict) -> bool:  # type: ignore[type-arg]
    """Does ``a``'s hard filters accept ``b``? Written from the documented rules, not the matchmaker's code."""
    f = a["filters"]
    if f["countries"] and b["country"] not in f["countries"]:
        return False
    if not f["age_min"] <= b["age"] <= f["age_max"]:
        return False
    if f["max_km"] is not None and (b["lat"] is None or _km(a, b) > f["max_km"] * 1.0001):
        return False
    return set(f["tags"]) <= set(b["tags"])


def compatible(a: dict, b: dict, blocks: dict[str, set[str]]) -> bool:  # type: ignore[type-arg]
    if b["user_id"] in blocks.get(a["user_id"], ()) or a["user_id"] in blocks.get(b["user_id"], ()):
        return False
    return _accepts(a, b) and _accepts(b, a)


def _write(r: redis.Redis, tickets: list[dict], now_us: int | None = None) -> dict[str, int]:  # type: ignore[type-arg]
    stamps = {}
    pipe = r.pipeline(transaction=False)
    for t in tickets:
        stamp = now_us if now_us is not None else time.time_ns() // 1000
        stamps[t["user_id"]] = stamp
        pipe.set(keyspace.match_ticket(t["user_id"]), json.dumps(t), px=TTL_MS)
        pipe.zadd(keyspace.MATCH_QUEUE, {t["user_id"]: stamp})
        pipe.xadd(keyspace.MATCH_FEED, {"op": "join", "user": t["user_id"], "at": stamp})
    pipe.execute()
    return stamps


def _pairs(r: redis.Redis) -> list[tuple[str, str, int, str]]:
    out = []
    entries: Any = r.xrange(keyspace.EVENTS_STREAM)  # a sync client: a list, typed as maybe-awaitable
    for _, f in entries:
        if f[b"type"] == b"match.paired":
            out.append((f[b"a"].decode(), f[b"b"].decode(), int(f[b"at_us"]), f[b"session_id"].decode()))
    return out


class Deliveries(threading.Thread):
    """Receives every ``match.found`` published to the users' channels (as a node would) and
    notes when each arrived: waits and pairs/s are measured to delivery, on the bench's clock."""

    def __init__(self, url: str) -> None:
        super().__init__(name="bench-deliveries", daemon=True)
        self._client = redis.Redis.from_url(url)
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        self._pubsub.psubscribe(keyspace.user_channel("*"))
        self._stop_event = threading.Event()
        self.received: dict[str, list[int]] = {}
        """session id -> arrival time (us) of each of its two messages."""

    def run(self) -> None:
        while not self._stop_event.is_set():
            msg = self._pubsub.get_message(timeout=0.05)
            if msg is None:
                continue
            at = time.time_ns() // 1000
            data = json.loads(msg["data"])
            if data.get("type") == "match.found":
                self.received.setdefault(data["session_id"], []).append(at)

    def delivered_at(self, session_id: str) -> int | None:
        """When the second of the pair's two messages arrived; None unless both did."""
        times = self.received.get(session_id, [])
        return max(times) if len(times) == 2 else None

    def close(self) -> None:
        self._stop_event.set()
        self.join(5)
        self._pubsub.close()
        self._client.close()


def _settle(r: redis.Redis, procs: list[subprocess.Popen[bytes]], quiet_s: float = 1.0,
            limit_s: float = 120.0) -> None:
    """Waits for a first pair, then until no pair has been made for ``quiet_s``."""
    deadline = time.monotonic() + limit_s
    while r.xlen(keyspace.EVENTS_STREAM) == 0 and time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            return
        time.sleep(0.02)
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        n = r.xlen(keyspace.EVENTS_STREAM)
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.05)


def _start(url: str, n: int) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "SWITCHBOARD_REDIS_URL": url, "SWITCHBOARD_LOG_LEVEL": "WARNING"}
    procs = []
    for _ in range(n):
        env["SWITCHBOARD_MATCHMAKER_PORT"] = str(free_port())
        procs.append(subprocess.Popen([sys.executable, "-m", "switchboard", "matchmaker"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    return procs


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 1) if values else float("nan")


def run(args: argparse.Namespace) -> dict:  # type: ignore[type-arg]
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-mm-") as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis")
        url = server.start()
        procs: list[subprocess.Popen[bytes]] = []
        deliveries: Deliveries | None = None
        try:
            r = redis.Redis.from_url(url)
            backlog = [_ticket(rng, f"b{i}") for i in range(args.tickets)]
            by_user = {t["user_id"]: t for t in backlog}
            blocks: dict[str, set[str]] = {}
            pipe = r.pipeline(transaction=False)
            for t in backlog[: len(backlog) // 50]:
                peers = {str(p) for p in rng.choice(list(by_user), size=3)} - {t["user_id"]}
                blocks[t["user_id"]] = peers
                pipe.sadd(keyspace.blocks(t["user_id"]), *peers)
            pipe.execute()
            joins = Counter(list(by_user))
            deliveries = Deliveries(url)
            deliveries.start()
            enq = _write(r, backlog, now_us=time.time_ns() // 1000)
            procs = _start(url, args.processes)
            _settle(r, procs, quiet_s=1.5)
            backlog_pairs = _pairs(r)
            if not backlog_pairs:
                err = b"".join(p.stderr.read() for p in procs if p.poll() is not None and p.stderr)
                raise SystemExit(f"bench: no pair was made; matchmaker said:\n{err.decode(errors='replace')}")

            # Arrivals: new users at a steady rate, plus whole backlog pairs coming back (rematch bait).
            comeback = [p for p in backlog_pairs if rng.random() < args.requeue]
            arrivals_at: dict[str, int] = {}
            total = int(args.arrival_rate * args.arrival_seconds)
            started, sent, i = time.monotonic(), 0, 0
            while sent < total:
                due = min(total, int((time.monotonic() - started) * args.arrival_rate) + 1)
                batch = [_ticket(rng, f"n{k}") for k in range(sent, due)]
                if i < len(comeback) and sent >= total // 2:
                    a, b, _, _ = comeback[i]
                    batch += [by_user[a], by_user[b]]
                    # queue.join ends the user's live pair first (join.lua): so does a comeback here.
                    r.delete(keyspace.match_pair(a), keyspace.match_pair(b))
                    i += 1
                for t in batch:
                    by_user[t["user_id"]] = t
                    joins[t["user_id"]] += 1
                stamps = _write(r, batch)
                enq.update(stamps)
                arrivals_at.update({u: s for u, s in stamps.items() if u.startswith("n")})
                sent = due
                time.sleep(0.01)
            _settle(r, procs, quiet_s=1.5)
            time.sleep(0.2)  # the last messages still on their way to the listener
        finally:
            _stop(procs)
            if deliveries is not None:
                deliveries.close()
        pairs = _pairs(r)
        left = r.zcard(keyspace.MATCH_QUEUE)
        r.close()
        server.stop()

    counts = Counter(u for a, b, _, _ in pairs for u in (a, b))
    double = sum(max(0, c - joins[u]) for u, c in counts.items())
    incompatible = sum(not compatible(by_user[a], by_user[b], blocks) for a, b, _, _ in pairs)
    seen: Counter[frozenset[str]] = Counter(frozenset((a, b)) for a, b, _, _ in pairs)
    rematches = sum(c - 1 for c in seen.values())
    assert deliveries is not None
    delivered = {sid: deliveries.delivered_at(sid) for _, _, _, sid in pairs}
    undelivered = sum(at is None for at in delivered.values())
    paired_at: dict[str, int] = {}
    for a, b, at, sid in pairs:
        paired_at.setdefault(a, delivered[sid] or at)
        paired_at.setdefault(b, delivered[sid] or at)
    backlog_at = sorted(at_us for _, _, _, sid in backlog_pairs if (at_us := delivered[sid]) is not None)
    span_s = max(1e-3, (backlog_at[-1] - backlog_at[0]) / 1e6) if backlog_at else float("inf")
    waits = _arrival_waits(arrivals_at, paired_at, enq, by_user, blocks)
    return {
        "tickets": args.tickets, "processes": args.processes,
        "pairs_per_s": round(len(backlog_pairs) / span_s),
        "wait_p50_ms": _pct(waits, 50), "wait_p99_ms": _pct(waits, 99),
        "double_matches": double, "incompatible_pairs": incompatible, "rematches": rematches,
        "backlog_pairs": len(backlog_pairs), "backlog_drain_s": round(span_s, 3),
        "backlog_claim_s": round((backlog_pairs[-1][2] - backlog_pairs[0][2]) / 1e6, 3),
        "arrivals": len(arrivals_at), "arrival_rate": args.arrival_rate, "requeued_pairs": min(i, len(comeback)),
        "waits_measured": len(waits), "pairs": len(pairs), "left_in_queue": left, "undelivered_pairs": undelivered,
    }


def _arrival_waits(arrivals_at: dict[str, int], paired_at: dict[str, int], enq: dict[str, int],
                   by_user: dict[str, dict], blocks: dict[str, set[str]]) -> list[float]:  # type: ignore[type-arg]
    """Waits of arrivals that found a compatible partner already waiting (checked independently)."""
    never = 1 << 62
    people = [u for u in enq if u.startswith(("b", "n"))]
    joined = np.array([enq[u] for u in people], np.int64)
    gone = np.array([paired_at.get(u, never) for u in people], np.int64)
    waits = []
    for u, t in arrivals_at.items():
        if u not in paired_at:
            continue
        waiting = np.flatnonzero((joined < t) & (gone > t))
        me = by_user[u]
        if any(compatible(me, by_user[people[j]], blocks) for j in waiting[:200]):
            waits.append((paired_at[u] - t) / 1000.0)
    return waits


def plot(result: dict, path: Path) -> None:  # type: ignore[type-arg]
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    keys = ["wait_p50_ms", "wait_p99_ms"]
    ax.bar(keys, [result[k] for k in keys])
    ax.set_ylabel("ms")
    ax.set_title(f"matchmaker x{result['processes']}: {result['pairs_per_s']} pairs/s, {result['tickets']} waiting")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
