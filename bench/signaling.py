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
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from switchboard.embedded import EmbeddedRedis, free_port
from switchboard.ids import UserId
from switchboard.tokens import Grants, TokenSigner

DESCRIPTION = "N sockets on one node process, then 1:1 call.chat relay at a steady rate"
WARMUP_PAIRS = 16
"""Sockets (pairs) opened before the baseline RSS reading and kept open to the end."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--connections", type=int, default=1000, help="sockets (even number)")
    parser.add_argument("--seconds", type=float, default=10.0, help="relay phase duration")
    parser.add_argument("--rate", type=float, default=5000.0, help="relayed messages per second, total")
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--node-log", action="store_true", help="show the node's log (stderr)")
    parser.add_argument("--timeline", action="store_true", help="print p50/p99/max relay latency per second (stderr)")


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def _client(url: str, pairs: list[tuple[str, str, str, str]], seconds: float, rate: float,
                  go: Any, out: Any) -> None:
    errors, latencies, sent = 0, [], 0
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as http:
        sockets: dict[str, aiohttp.ClientWebSocketResponse] = {}
        t0 = time.monotonic()
        sem = asyncio.Semaphore(200)

        async def connect(user: str, token: str) -> None:
            nonlocal errors
            async with sem:
                try:
                    ws = await http.ws_connect(url, params={"token": token}, autoping=True, heartbeat=None)
                    hello = json.loads((await ws.receive(timeout=30)).data)
                    assert hello["type"] == "hello"
                    sockets[user] = ws
                except Exception as exc:
                    errors += 1
                    if errors == 1:
                        print(f"bench client: first connect error: {exc!r}", file=sys.stderr)

        await asyncio.gather(*(connect(u, t) for a, ta, b, tb in pairs for u, t in ((a, ta), (b, tb))))
        connected_s = time.monotonic() - t0
        out.put(("connected", len(sockets), connected_s))
        # 1:1 calls: a invites b, b accepts.
        calls: dict[str, str] = {}

        async def setup(a: str, b: str) -> None:
            nonlocal errors
            try:
                wa, wb = sockets[a], sockets[b]
                await wa.send_str(json.dumps({"type": "call.invite", "id": 1, "to": b}))
                call_id = None
                while call_id is None:
                    m = json.loads((await wa.receive(timeout=30)).data)
                    if m["type"] == "reply":
                        call_id = m["call_id"]
                    elif m["type"] == "error":
                        raise RuntimeError(m)
                await wb.send_str(json.dumps({"type": "call.accept", "id": 2, "call_id": call_id}))
                while True:
                    m = json.loads((await wb.receive(timeout=30)).data)
                    if m["type"] == "reply":
                        break
                    if m["type"] == "error":
                        raise RuntimeError(m)
                calls[a] = call_id
            except Exception as exc:
                errors += 1
                if errors == 1:
                    print(f"bench client: first call setup error: {exc!r}", file=sys.stderr)

        await asyncio.gather(*(setup(a, b) for a, _, b, _ in pairs if a in sockets and b in sockets))
        out.put(("ready", len(calls)))

        async def reader(ws: aiohttp.ClientWebSocketResponse) -> None:
            nonlocal errors
            async for msg in ws:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    continue
                m = json.loads(msg.data)
                if m["type"] == "call.chat":
                    sent_at = float(m["text"])
                    latencies.append((sent_at, time.time() - sent_at))
                elif m["type"] == "error":
                    errors += 1

        readers = [asyncio.create_task(reader(ws)) for ws in sockets.values()]
        await asyncio.get_running_loop().run_in_executor(None, go.wait)  # every client process is ready
        callers = list(calls.items())
        if callers and rate > 0:
            interval = 1.0 / rate
            end = time.monotonic() + seconds
            nxt = time.monotonic()
            i = 0
            while time.monotonic() < end:
                a, call_id = callers[i % len(callers)]
                i += 1
                try:
                    await sockets[a].send_str(json.dumps({"type": "call.chat", "call_id": call_id,
                                                          "text": repr(time.time())}))
                    sent += 1
                except Exception:
                    errors += 1
                nxt += interval
                delay = nxt - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
        await asyncio.sleep(1.0)
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        for ws in sockets.values():
            await ws.close()
    out.put(("done", sent, latencies, errors))


def _client_main(url: str, pairs: list[tuple[str, str, str, str]], seconds: float, rate: float,
                 go: Any, out: Any) -> None:
    import uvloop

    uvloop.run(_client(url, pairs, seconds, rate, go, out))


class _Warmup:
    """WARMUP_PAIRS pairs that connect, call and chat once, then stay connected until :meth:`stop`
    (a thread of the main process with its own loop): the node's one-time costs happen before the
    baseline RSS is read, and these sockets are in both readings."""

    def __init__(self, url: str, signer: TokenSigner) -> None:
        self._url = url
        self._signer = signer
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="bench-warmup", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(60) or self._error is not None:
            raise RuntimeError(f"warm-up failed: {self._error!r}")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()

    async def _run(self) -> None:
        async with aiohttp.ClientSession() as http:
            sockets = []
            for i in range(WARMUP_PAIRS):
                pair = []
                for side in ("a", "b"):
                    token = self._signer.sign(Grants(sub=UserId(f"warm-{side}{i}"), verified=True))
                    ws = await http.ws_connect(self._url, params={"token": token})
                    await ws.receive(timeout=30)  # hello
                    pair.append(ws)
                a, b = pair
                await a.send_str(json.dumps({"type": "call.invite", "id": 1, "to": f"warm-b{i}"}))
                call_id = await _reply_field(a, "call_id")
                await b.send_str(json.dumps({"type": "call.accept", "id": 2, "call_id": call_id}))
                await _reply_field(b, "call_id")
                await a.send_str(json.dumps({"type": "call.chat", "id": 3, "call_id": call_id, "text": "warm"}))
                await _reply_field(a, None)
                sockets += pair
            self._ready.set()
            await asyncio.get_running_loop().run_in_executor(None, self._stop.wait)
            for ws in sockets:
                await ws.close()


async def _reply_field(ws: aiohttp.ClientWebSocketResponse, key: str | None) -> Any:
    while True:
        m = json.loads((await ws.receive(timeout=30)).data)
        if m["type"] == "error":
            raise RuntimeError(m)
        if m["type"] == "reply":
            return m.get(key) if key else None


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


def run(args: argparse.Namespace) -> dict:  # type: ignore[type-arg]
    n = args.connections - args.connections % 2
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, n + 4096))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    key = Ed25519PrivateKey.generate()
    signer = TokenSigner(key, issuer="switchboard", ttl_s=3600)
    with tempfile.TemporaryDirectory(prefix="bench-signaling-") as tmp:
        pub = Path(tmp) / "token.pub.pem"
        pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo))
        redis = EmbeddedRedis(Path(tmp) / "redis")
        redis_url = redis.start()
        port = free_port()
        env = {**os.environ, "SWITCHBOARD_REDIS_URL": redis_url, "SWITCHBOARD_TOKENS_PUBLIC_KEY_FILE": str(pub),
               "SWITCHBOARD_NODE_PORT": str(port), "SWITCHBOARD_DATA_DIR": tmp, "SWITCHBOARD_LOG_LEVEL": "WARNING",
               "SWITCHBOARD_NODE_WS_SEND_QUEUE": "1024"}
        node = subprocess.Popen([sys.executable, "-m", "switchboard", "node", "--workers", "1"], env=env,
                                stdout=subprocess.PIPE, stderr=None if args.node_log else subprocess.DEVNULL, text=True)
        try:
            assert node.stdout is not None
            line = node.stdout.readline()
            if "listening" not in line:
                raise RuntimeError(f"node did not start: {line!r}")
            url = f"http://127.0.0.1:{port}/ws"
            warm = _Warmup(url, signer)
            warm.start()  # the node's one-time costs (lazy imports, caches) stay out of the per-socket figure
            time.sleep(0.5)
            rss_before = _rss_kib(node.pid)
            users = [f"u{i}" for i in range(n)]
            tokens = {u: signer.sign(Grants(sub=UserId(u), verified=True)) for u in users}
            pairs = [(users[i], tokens[users[i]], users[i + 1], tokens[users[i + 1]]) for i in range(0, n, 2)]
            per = [pairs[i::args.clients] for i in range(args.clients)]
            ctx = mp.get_context("spawn")
            out: Any = ctx.Queue()
            go: Any = ctx.Event()
            setup_budget = 30 + n / 200
            t0 = time.monotonic()
            procs = [ctx.Process(target=_client_main, args=(url, chunk, args.seconds,
                     args.rate * len(chunk) / max(1, len(pairs)), go, out)) for chunk in per if chunk]
            for p in procs:
                p.start()
            pending: list[tuple[Any, ...]] = []

            def collect(kind: str, timeout: float) -> list[tuple[Any, ...]]:
                got = [m for m in pending if m[0] == kind]
                pending[:] = [m for m in pending if m[0] != kind]
                while len(got) < len(procs):
                    m = out.get(timeout=timeout)
                    (got if m[0] == kind else pending).append(m)
                return got

            conn = collect("connected", setup_budget + 60)
            connected, connect_s = sum(m[1] for m in conn), max(m[2] for m in conn)
            connect_wall = time.monotonic() - t0
            rss_after = _rss_kib(node.pid)
            ready = sum(m[1] for m in collect("ready", setup_budget + 60))
            go.set()
            done = collect("done", setup_budget + args.seconds + 120)
            sent, errors = sum(m[1] for m in done), sum(m[3] for m in done)
            samples = sorted(x for m in done for x in m[2])
            latencies = [lat for _, lat in samples]
            if args.timeline:
                _timeline(samples)
            for p in procs:
                p.join(30)
        finally:
            with contextlib.suppress(NameError):
                warm.stop()
            node.terminate()
            node.wait(10)
            redis.stop()
    return {
        "connections": connected,
        "node_rss_kib_per_connection": round((rss_after - rss_before) / max(1, connected), 2),
        "connect_per_s": round(connected / max(connect_s, 1e-9)),
        "messages_per_s": round(len(latencies) / args.seconds),
        "relay_p50_ms": round(_pct(latencies, 0.50) * 1000, 3),
        "relay_p99_ms": round(_pct(latencies, 0.99) * 1000, 3),
        "errors": errors + (n - connected) + (len(pairs) - ready) + (sent - len(latencies)),
        "target_rate": args.rate,
        "sent": sent,
        "calls": ready,
        "connect_wall_s": round(connect_wall, 2),
        "node_rss_kib": rss_after,
    }
