"""The credit ledger under load, through the public doors only: tips (a spend on a creator: two
ledger transfers, the creator's share and the platform's) over HTTP, and signed Stripe webhooks.

A tip is ``--amount`` credits (2 by default: 1 to the creator, 1 to the platform at a 70% share;
a 1-credit tip would be one transfer, all of it the platform's). The spenders use the lean
keep-alive client of bench/http_load.py (aiohttp's client would spend ~0.3 ms of CPU per request on
the cores the server under test needs); setup, webhooks and reads use aiohttp.

Starts embedded Redis and Postgres, localstripe (its own process) and one ``switchboard api``;
funds ``--wallets`` wallets by buying credit packs with a test card, then ``--spenders`` closed-loop
clients tip for ``--seconds`` (5% of tips re-send an earlier id: they must not apply twice) while
one client posts signed ``payment_intent.succeeded`` events for payments made in localstripe
behind the API's back, each carrying the whole intent as Stripe's do (``--thin-events``: only its
id, so the API re-reads it); the webhook answers once the credits are committed. Afterwards it reads
every wallet (none may be negative) and runs ``switchboard ledger check`` (debits must equal credits).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from bench import http_load
from bench.api import _cpu_s, _json, _pct, _wait_ready
from switchboard.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from switchboard.keys import KeyPaths, ensure_secrets
from switchboard.stripe_emulator import API_KEY, StripeEmulator

DESCRIPTION = "credit ledger: tips (2 transfers each) and signed webhooks through the API, then the books"
PACK, PACK_CREDITS = "large", 700


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--wallets", type=int, default=50, help="wallets that spend")
    parser.add_argument("--spenders", type=int, default=32, help="concurrent closed-loop clients")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the measured run")
    parser.add_argument("--packs", type=int, default=3, help=f"{PACK} packs ({PACK_CREDITS} credits) per wallet")
    parser.add_argument("--webhooks", type=int, default=100, help="signed payment events posted during the run")
    parser.add_argument("--amount", type=int, default=2,
                        help="credits per tip (2: one credit to the creator and one to the platform, two transfers)")
    parser.add_argument("--thin-events", action="store_true",
                        help="events carry only the intent's id (the API re-reads it from Stripe), not the whole "
                             "intent as Stripe sends it")


def _sign(body: bytes, secret: str) -> str:
    t = int(time.time())
    return f"t={t},v1={hmac.new(secret.encode(), f'{t}.'.encode() + body, hashlib.sha256).hexdigest()}"


async def _users(session: aiohttp.ClientSession, base: str, n: int, tag: str) -> list[tuple[str, str]]:
    gate = asyncio.Semaphore(8)

    async def one(i: int) -> tuple[str, str]:
        async with gate:
            creds = {"email": f"{tag}{i}@example.com", "password": f"bench-password-{i}"}
            await _json(session, "POST", f"{base}/auth/register", json=creds)  # 202: no id (no enumeration)
            login = await _json(session, "POST", f"{base}/auth/login", json=creds)
            return str(login["user_id"]), str(login["access_token"])

    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def _card(stripe: aiohttp.ClientSession, stripe_url: str) -> str:
    form = {"type": "card", "card[number]": "4242424242424242", "card[exp_month]": "12", "card[exp_year]": "2030",
            "card[cvc]": "123"}
    async with stripe.post(f"{stripe_url}/v1/payment_methods", data=form) as resp:
        return str((await resp.json())["id"])


async def _fund(session: aiohttp.ClientSession, stripe: aiohttp.ClientSession, base: str, stripe_url: str,
                wallets: list[tuple[str, str]], packs: int) -> None:
    gate = asyncio.Semaphore(4)

    async def one(token: str) -> None:
        async with gate:
            for _ in range(packs):
                body = await _json(session, "POST", f"{base}/payments/credit-packs/{PACK}/intent",
                                   json={"payment_method": await _card(stripe, stripe_url)},
                                   headers={"Authorization": f"Bearer {token}"})
                assert body["credited"], body

    await asyncio.gather(*(one(t) for _, t in wallets))


async def _unseen_payments(stripe: aiohttp.ClientSession, stripe_url: str, wallets: list[tuple[str, str]],
                           n: int) -> list[dict[str, Any]]:
    """Succeeded payments made in Stripe that the API has not heard of (the intents, as Stripe's events
    carry them): their webhooks will credit."""
    customers: dict[str, str] = {}
    intents = []
    for i in range(n):
        uid = wallets[i % len(wallets)][0]
        async with stripe.get(f"{stripe_url}/v1/customers", params={"limit": "100"}) as resp:
            for c in (await resp.json())["data"]:
                customers[c["metadata"].get("user_id", "")] = c["id"]
        form = {"amount": "499", "currency": "eur", "customer": customers[uid], "confirm": "true",
                "payment_method": await _card(stripe, stripe_url), "metadata[user_id]": uid,
                "metadata[pack]": "small", "metadata[credits]": "100"}
        async with stripe.post(f"{stripe_url}/v1/payment_intents", data=form) as resp:
            pi = await resp.json()
            assert pi["status"] == "succeeded", pi
            intents.append(pi)
    return intents


async def _http_floor(base: str, clients: int, seconds: float) -> float:
    """Requests per second the same clients get from the API's cheapest route (no auth, no database):
    the machine's floor in this run, against which the tip rate is read (the machine is shared)."""
    host, port = base.split("//", 1)[1].split("/", 1)[0].split(":")
    pool = http_load.Pool(host, int(port), max_connections=clients)
    raw = http_load.build("GET", host, int(port), "/api/payments/catalogue")
    stop, count = time.perf_counter() + seconds, 0

    async def one() -> None:
        nonlocal count
        while time.perf_counter() < stop:
            await pool.request(raw, http_load.Outcome(time.perf_counter()))
            count += 1

    await asyncio.gather(*(one() for _ in range(clients)))
    pool.close()
    return round(count / seconds, 1)


async def _run(base: str, stripe_url: str, secret: str, args: argparse.Namespace, api_pid: int) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=max(64, args.spenders * 2))
    async with aiohttp.ClientSession(connector=connector) as session, aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {API_KEY}"}) as stripe:
        wallets = await _users(session, base, args.wallets, "wallet")
        creators = await _users(session, base, max(10, args.wallets // 5), "creator")
        await _fund(session, stripe, base, stripe_url, wallets, args.packs)
        unseen = await _unseen_payments(stripe, stripe_url, wallets, args.webhooks)
        rng = random.Random(1)
        tip_lat: list[float] = []
        hook_lat: list[float] = []
        applied: dict[str, int] = {}
        sent: list[tuple[str, int]] = []
        outcome: dict[str, int] = {}
        stop = time.perf_counter() + args.seconds

        host, port = base.split("//", 1)[1].split("/", 1)[0].split(":")
        pool = http_load.Pool(host, int(port), max_connections=args.spenders)

        async def spender() -> None:
            while time.perf_counter() < stop:
                if sent and rng.random() < 0.05:
                    tip_id, w = rng.choice(sent)  # a retry of an earlier tip: must not apply again
                else:
                    tip_id, w = uuid.uuid4().hex, rng.randrange(len(wallets))
                    sent.append((tip_id, w))
                creator = rng.choice(creators)[0]
                raw = http_load.build("POST", host, int(port), f"/api/users/{creator}/tips", {
                    "Authorization": f"Bearer {wallets[w][1]}", "Content-Type": "application/json"},
                    json.dumps({"id": tip_id, "amount": args.amount}).encode())
                outcome_of = await pool.request(raw, http_load.Outcome(time.perf_counter()))
                status = outcome_of.status
                tip_lat.append(outcome_of.elapsed)
                outcome[str(status)] = outcome.get(str(status), 0) + 1
                if status == 201:
                    applied[f"{w}:{tip_id}"] = applied.get(f"{w}:{tip_id}", 0) + 1

        async def webhooks() -> None:
            pause = args.seconds / max(1, len(unseen))
            for intent in unseen:
                obj = {"id": intent["id"], "object": "payment_intent"} if args.thin_events else intent
                event = {"id": f"evt_{uuid.uuid4().hex[:20]}", "object": "event", "type": "payment_intent.succeeded",
                         "created": int(time.time()), "data": {"object": obj}}
                body = json.dumps(event).encode()
                started = time.perf_counter()
                async with session.post(f"{base}/payments/webhook", data=body, headers={
                        "Stripe-Signature": _sign(body, secret), "Content-Type": "application/json"}) as resp:
                    answer = await resp.json()
                if answer.get("processed"):
                    hook_lat.append(time.perf_counter() - started)
                await asyncio.sleep(pause)

        floor = await _http_floor(base, args.spenders, min(3.0, args.seconds))
        share = int((await _json(session, "GET", f"{base}/payments/catalogue"))["creator_share_percent"])
        creator_part = args.amount * share // 100
        per_tip = (creator_part > 0) + (args.amount - creator_part > 0)  # transfers one tip writes
        stop = time.perf_counter() + args.seconds
        started, cpu_before = time.perf_counter(), _cpu_s(api_pid)
        hooks = asyncio.ensure_future(webhooks())
        await asyncio.gather(*(spender() for _ in range(args.spenders)))
        # The tips' window (the webhooks' last answers may come later: they are not tips).
        elapsed, api_cpu = time.perf_counter() - started, _cpu_s(api_pid) - cpu_before
        await hooks
        pool.close()
        balances = []
        for _, token in wallets:
            balances.append((await _json(session, "GET", f"{base}/wallet?limit=1",
                                         headers={"Authorization": f"Bearer {token}"}))["available"])
    done = sum(applied.values())
    funded = len(wallets) * args.packs * PACK_CREDITS + 100 * len(hook_lat)
    answered = sum(outcome.values())
    return {
        "transfers_per_s": round(per_tip * done / elapsed, 1),
        "http_floor_per_s": floor,
        "tips_vs_floor": round(done / elapsed / floor, 3) if floor else None,
        "tips_per_s": round(done / elapsed, 1),
        "transfer_p50_ms": _pct(tip_lat, 0.50),
        "transfer_p99_ms": _pct(tip_lat, 0.99),
        "webhook_p50_ms": _pct(hook_lat, 0.50),
        "webhook_p99_ms": _pct(hook_lat, 0.99),
        "webhooks_processed": len(hook_lat),
        "webhook_events": "thin" if args.thin_events else "whole",
        "negative_balances": sum(1 for b in balances if b < 0),
        "double_applied": sum(1 for n in applied.values() if n > 1) + abs(funded - args.amount * done - sum(balances)),
        "api_cpu_ms_per_request": round(1e3 * api_cpu / answered, 3) if answered else None,
        "responses": outcome,
        "amount": args.amount,
        "transfers_per_tip": per_tip,
        "wallets": len(wallets),
        "spenders": args.spenders,
        "seconds": args.seconds,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        data = Path(tmp)
        data.chmod(0o711)  # the embedded Postgres may run as another user
        redis, postgres = EmbeddedRedis(data / "redis"), EmbeddedPostgres(data / "postgres")
        emulator = StripeEmulator(data / "localstripe")
        proc: subprocess.Popen[bytes] | None = None
        try:
            redis_url, database_url, stripe_url = redis.start(), postgres.start(), emulator.start()
            ensure_secrets(KeyPaths(data / "secrets" / "key.pem", data / "secrets" / "key.pub.pem",
                                    data / "secrets" / "turn"))
            port = free_port()
            env = {
                **os.environ,
                "SWITCHBOARD_REDIS_URL": redis_url, "SWITCHBOARD_DATABASE_URL": database_url,
                "SWITCHBOARD_DATA_DIR": str(data),
                "SWITCHBOARD_TOKENS_PRIVATE_KEY_FILE": str(data / "secrets" / "key.pem"),
                "SWITCHBOARD_TOKENS_PUBLIC_KEY_FILE": str(data / "secrets" / "key.pub.pem"),
                "SWITCHBOARD_API_PORT": str(port),
                "SWITCHBOARD_API_RATE_IP_PER_MIN": "100000000", "SWITCHBOARD_API_AUTH_IP_PER_MIN": "100000000",
                "SWITCHBOARD_API_RATE_USER_PER_MIN": "100000000",
                "SWITCHBOARD_PAYMENTS_STRIPE_API_KEY": API_KEY, "SWITCHBOARD_PAYMENTS_STRIPE_API_BASE": stripe_url,
                "SWITCHBOARD_PAYMENTS_STRIPE_WEBHOOK_SECRET": emulator.webhook_secret,
                "SWITCHBOARD_LOG_LEVEL": "WARNING",
            }
            cmd = [sys.executable, "-m", "switchboard"]
            subprocess.run([*cmd, "api", "migrate"], env=env, check=True, capture_output=True, timeout=120)
            log = (data / "api.log").open("wb")
            proc = subprocess.Popen([*cmd, "api"], env=env, stdout=log, stderr=subprocess.STDOUT)
            _wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
            result = asyncio.run(_run(f"http://127.0.0.1:{port}/api", stripe_url, emulator.webhook_secret, args,
                                      proc.pid))
            check = subprocess.run([*cmd, "ledger", "check"], env=env, capture_output=True, text=True, timeout=300)
            found = re.search(r"debits (\d+)\s+credits (\d+)", check.stdout)
            result["ledger_imbalance"] = abs(int(found.group(1)) - int(found.group(2))) if found else None
            result["ledger_check"] = check.stdout.strip().splitlines()[-1] if check.stdout else check.stderr[-300:]
            return result
        finally:
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            emulator.stop()
            postgres.stop()
            redis.stop()
