"""Control API under load: room tokens (and some chat messages) at a fixed request rate.

Starts its own ``switchboard api`` process against embedded Redis and Postgres, makes users over
HTTP, then sends requests open-loop (on a schedule, not waiting for answers) for ``--seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

from bench.mailbox import Mailbox, owned_rooms
from switchboard.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from switchboard.keys import KeyPaths, ensure_secrets

DESCRIPTION = "control API: room token and chat message latency at a fixed request rate"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rps", type=float, default=500.0, help="requests per second to send")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the measured run")
    parser.add_argument("--users", type=int, default=100, help="accounts the load is spread over")
    parser.add_argument("--message-share", type=float, default=0.1, help="share of requests that post a message")


def _pct(samples: list[float], q: float) -> float | None:
    if not samples:
        return None
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3, 2)


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
    async with session.request(method, url, **kw) as resp:
        body = await resp.json(content_type=None)
        if resp.status >= 300:
            raise RuntimeError(f"{method} {url}: {resp.status} {body}")
        return body


async def _setup(base: str, users: int, smtp_port: int) -> tuple[list[str], list[str], list[str]]:
    """Tokens of ``users`` new accounts, one conversation per pair of them, and 50 rooms."""
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


async def _load(base: str, tokens: list[str], convs: list[str], rooms: list[str], rps: float, seconds: float,
                message_share: float) -> dict[str, Any]:
    token_lat: list[float] = []
    message_lat: list[float] = []
    errors: dict[str, int] = {}
    total = int(rps * seconds)
    every = max(1, round(1 / message_share)) if message_share > 0 else 0
    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one(i: int) -> None:
            is_message = bool(every) and i % every == 0 and convs
            user = (2 * (i % len(convs))) if is_message else i % len(tokens)
            headers = {"Authorization": f"Bearer {tokens[user]}"}
            if is_message:
                url, body = f"{base}/conversations/{convs[i % len(convs)]}/messages", {"text": f"bench {i}"}
            else:
                url, body = f"{base}/rooms/{rooms[i % len(rooms)]}/token", {"role": "viewer"}
            started = time.perf_counter()
            try:
                async with session.post(url, json=body, headers=headers) as resp:
                    await resp.read()
                    ok = resp.status < 300
                    key = str(resp.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                ok, key = False, type(exc).__name__
            elapsed = time.perf_counter() - started
            if not ok:
                errors[key] = errors.get(key, 0) + 1
            elif is_message:
                message_lat.append(elapsed)
            else:
                token_lat.append(elapsed)

        tasks = []
        start = time.perf_counter()
        for i in range(total):
            delay = start + i / rps - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    done = len(token_lat) + len(message_lat)
    return {
        "rps_target": rps,
        "rps_achieved": round(done / elapsed, 1),
        "seconds": seconds,
        "requests": total,
        "token_p50_ms": _pct(token_lat, 0.50),
        "token_p95_ms": _pct(token_lat, 0.95),
        "token_p99_ms": _pct(token_lat, 0.99),
        "message_post_p50_ms": _pct(message_lat, 0.50),
        "message_post_p95_ms": _pct(message_lat, 0.95),
        "errors": sum(errors.values()),
        "errors_by_kind": errors,
        "token_samples_ms": [round(s * 1e3, 2) for s in token_lat[:: max(1, len(token_lat) // 2000)]],
    }


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
            port, smtp_port = free_port(), free_port()
            env = {
                **os.environ,
                "SWITCHBOARD_REDIS_URL": redis_url,
                "SWITCHBOARD_DATABASE_URL": database_url,
                "SWITCHBOARD_DATA_DIR": str(data),
                "SWITCHBOARD_TOKENS_PRIVATE_KEY_FILE": str(data / "secrets" / "key.pem"),
                "SWITCHBOARD_TOKENS_PUBLIC_KEY_FILE": str(data / "secrets" / "key.pub.pem"),
                "SWITCHBOARD_API_PORT": str(port),
                "SWITCHBOARD_API_SMTP_HOST": "127.0.0.1",  # bench.mailbox: the code that verifies the rooms' owner
                "SWITCHBOARD_API_SMTP_PORT": str(smtp_port),
                # One client address sends everything here: lift the per-address limit, keep the per-user one.
                "SWITCHBOARD_API_RATE_IP_PER_MIN": "100000000",
                "SWITCHBOARD_API_AUTH_IP_PER_MIN": "100000000",
                "SWITCHBOARD_LOG_LEVEL": "WARNING",
            }
            cmd = [sys.executable, "-m", "switchboard", "api"]
            subprocess.run([*cmd, "migrate"], env=env, check=True, capture_output=True, timeout=120)
            log = (data / "api.log").open("wb")
            proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
            _wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
            base = f"http://127.0.0.1:{port}/api"
            tokens, convs, rooms = asyncio.run(_setup(base, args.users, smtp_port))
            result = asyncio.run(_load(base, tokens, convs, rooms, args.rps, args.seconds, args.message_share))
            result["users"] = args.users
            return result
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
    ax.set_title(f"{result['rps_achieved']}/{result['rps_target']} req/s, token p95 {result['token_p95_ms']} ms")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


