"""The commands of ``switchboard`` (``up``, ``node``, ``node drain``, ``api``, ``matchmaker``, ``config``,
``turn config``): each builds its planes (:mod:`switchboard.cli.assembly`) and serves them."""

from __future__ import annotations

import dataclasses
import gc
import logging
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path

import uvloop

from control_api.accounts import AdminLogin
from control_api.app import create_api_app
from control_api.db import upgrade
from matchmaker.process import MatchmakerDeps, install_matchmaker
from signaling.node import Announce, drain_on_stop, install_node
from switchboard.cli.assembly import Process, api_deps, need, node_deps, pipe_address, prepare_database
from switchboard.embedded import EmbeddedPostgres, EmbeddedRedis
from switchboard.keys import KeyPaths, ensure_secrets, load_turn_secret
from switchboard.listener import GateLimits, Handshakes
from switchboard.nodes import drain_node
from switchboard.runtime import Gate, check_port_free, serve
from switchboard.settings import Settings, describe
from switchboard.stripe_emulator import API_KEY, StripeEmulator
from turn.coturn import CoturnSecrets, render_config

log = logging.getLogger("switchboard")


def _save_admin_login(settings: Settings, login: AdminLogin) -> Path:
    path = settings.secrets_dir / "admin_login"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(f"{login.email}\n{login.password}\n")
    return path


def admin_login_line(login: AdminLogin, saved: Path, terminal: bool) -> str:
    """The first-run line about the administrator. The password is shown only to a person at a
    terminal: when standard output is a pipe or a file (a service manager, docker logs, a log
    collector) it would be stored with the logs, so the line points at the 0600 file instead."""
    if terminal:
        return f"  first run: admin login {login.email} / {login.password}  (saved in {saved}, mode 0600)"
    return f"  first run: admin login {login.email}, password in {saved} (mode 0600)"



def cmd_up(settings: Settings, stripe_emulator: bool = False) -> int:
    check_port_free(settings.http.host, settings.http.port)  # before the embedded servers start
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.data_dir.chmod(0o711)  # traversable (the embedded Postgres runs as another user), not listable
    created = ensure_secrets(KeyPaths.from_settings(settings))
    for path in created:
        log.info("generated secret file %s", path)
    children: list[EmbeddedRedis | EmbeddedPostgres | StripeEmulator] = []
    try:
        if stripe_emulator:
            emulator = StripeEmulator(settings.data_dir / "localstripe")
            children.append(emulator)
            settings = dataclasses.replace(settings, payments=dataclasses.replace(
                settings.payments, stripe_api_key=API_KEY, stripe_api_base=emulator.start(),
                stripe_webhook_secret=emulator.webhook_secret))
        redis_url, database_url = settings.redis_url, settings.database_url
        if not redis_url:
            children.append(EmbeddedRedis(settings.data_dir / "redis"))
            redis_url = children[-1].start()
        if not database_url:
            children.append(EmbeddedPostgres(settings.data_dir / "postgres"))
            database_url = children[-1].start()
        uvloop.run(_up(settings, redis_url, database_url, children))
    finally:
        for child in reversed(children):
            child.stop()
    return 0


def build_up_app(settings: Settings, redis_url: str, database_url: str, proc: Process):  # type: ignore[no-untyped-def]
    """Every plane on one application: the node at /, the matchmaker in the background, the API at /api."""
    app = proc.app()
    install_node(app, node_deps(settings, redis_url, proc.readiness, tracing=proc.tracing, registry=proc.registry))
    install_matchmaker(app, MatchmakerDeps(settings.matchmaker, redis_url, proc.readiness, proc.registry))
    app.add_subapp("/api", create_api_app(api_deps(settings, database_url, redis_url, proc.readiness, proc.registry,
                                                     proc.tracing)))
    return app


async def _up(settings: Settings, redis_url: str, database_url: str, children: list) -> None:  # type: ignore[type-arg]
    admin = await prepare_database(settings, database_url)
    app = build_up_app(settings, redis_url, database_url, Process.new(settings.tracing))

    def started(port: int) -> None:
        base = f"http://{settings.http.host}:{port}"
        lines = [
            "Switchboard is up",
            f"  web      {base}/",
            f"  api      {base}/api/",
            f"  ws       ws://{settings.http.host}:{port}/ws",
            f"  health   {base}/readyz   metrics {base}/metrics",
            f"  data     {settings.data_dir.resolve()}"
            + "".join(f"  (embedded {c.name} on 127.0.0.1:{c.port}, pid {c.pid})" for c in children),
        ]
        emulator = next((c for c in children if isinstance(c, StripeEmulator)), None)
        if emulator is not None:
            emulator.send_webhooks_to(f"{base}/api/payments/webhook")
            lines.append(f"  stripe   localstripe emulator {emulator.url} (pid {emulator.pid}), webhooks to /api")
        if admin is not None:
            lines.append(admin_login_line(admin, _save_admin_login(settings, admin), sys.stdout.isatty()))
        lines.append("Press Ctrl-C to stop.")
        print("\n".join(lines), flush=True)

    await serve(app, settings.http.host, settings.http.port, on_started=started)


def cmd_node(settings: Settings) -> int:
    redis_url = need(settings.redis_url, "redis_url")
    proc = Process.new(settings.tracing, "node")
    node = settings.node
    app = proc.app(public_metrics=False, socket_urls=node.page_origins)
    bound: list[int] = []

    def url() -> str:
        if not bound:  # not listening yet: not announced (placement must not send clients here)
            return ""
        return node.public_url.rstrip("/") or f"http://{node.host}:{bound[0]}"

    announce = Announce(url=url, workers=node.workers or (os.cpu_count() or 1),
                        media_address=node.announced_address or (node.rtc_addresses[0] if node.rtc_addresses else ""),
                        pipe_address=pipe_address(settings), viewer_cap=settings.cascade.viewers_per_node)
    handshakes = Handshakes(node.ws_max_handshakes)
    gate = Gate(handshakes, GateLimits(per_pass=node.ws_gate_per_pass, queue=node.ws_gate_queue,
                                       wait_s=node.ws_gate_wait_s,
                                       retry_after_s=max(1, math.ceil(node.overload_retry_after_s)),
                                       rate_per_s=node.ws_max_connects_per_s))
    install_node(app, node_deps(settings, redis_url, proc.readiness, pool=True, announce=announce,
                                 tracing=proc.tracing, registry=proc.registry, handshakes=handshakes))
    announced = _announce("node")

    def started(port: int) -> None:
        bound.append(port)
        announced(port)

    # Everything built so far (modules, the app) lives as long as the process: keep it out of the
    # GC's full collections, whose stop-the-world pause grows with every object they scan (10k
    # sockets: ~750k objects, 0.4-0.9 s). Rarer young collections promote fewer in-flight relay
    # objects, so full collections come seldom while the socket count holds steady.
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    metrics = proc.metrics_listener(settings.metrics.host, settings.metrics.node_port, "metrics.node_port")
    # SIGTERM drains first (clients are sent to another node), for up to node.drain_grace_s.
    uvloop.run(serve(app, node.host, node.port, on_started=started, internal=metrics,
                     stop_deadline_s=node.drain_grace_s + 5.0, gate=gate if node.ws_gate else None,
                     before_stop=lambda: drain_on_stop(app)))
    return 0


def cmd_drain(settings: Settings, node_id: str | None) -> int:
    if not node_id:
        print("switchboard: node drain needs the node's id (see `switchboard nodes`)", file=sys.stderr)
        return 2
    ok, text = uvloop.run(drain_node(need(settings.redis_url, "redis_url"), node_id))
    print(text, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


def cmd_api(settings: Settings, migrate_only: bool) -> int:
    redis_url = need(settings.redis_url, "redis_url")
    database_url = need(settings.database_url, "database_url")
    if migrate_only:
        uvloop.run(upgrade(database_url))
        print("migrations are at head")
        return 0
    proc = Process.new(settings.tracing, "api")
    app = proc.app(public_metrics=False)
    app.add_subapp("/api", create_api_app(api_deps(settings, database_url, redis_url, proc.readiness, proc.registry,
                                                     proc.tracing)))
    metrics = proc.metrics_listener(settings.metrics.host, settings.metrics.api_port, "metrics.api_port")
    uvloop.run(serve(app, settings.api.host, settings.api.port, on_started=frozen_once_started(_announce("api")),
                     internal=metrics))
    return 0


def cmd_matchmaker(settings: Settings) -> int:
    redis_url = need(settings.redis_url, "redis_url")
    proc = Process.new()
    app = proc.app()
    install_matchmaker(app, MatchmakerDeps(settings.matchmaker, redis_url, proc.readiness, proc.registry))
    uvloop.run(
        serve(app, settings.matchmaker.host, settings.matchmaker.port, on_started=_announce("matchmaker"))
    )
    return 0


def frozen_once_started(announce: Callable[[int], None]) -> Callable[[int], None]:
    """``announce``, after moving every object alive once the app has started into the GC's permanent
    generation. What exists then (modules: SQLAlchemy, stripe, aiohttp; the pools, the compiled
    statements) lives as long as the process; left in, the API's full collections scanned ~190k
    objects and stopped the loop ~100 ms each, twice in a 10 s ledger bench, and the slowest Stripe
    webhooks and tips were the ones caught behind them (docs/performance.md). Collected first, so
    the startup's garbage is not kept forever."""

    def started(port: int) -> None:
        gc.collect()
        gc.freeze()
        announce(port)

    return started


def _announce(name: str) -> Callable[[int], None]:
    def started(port: int) -> None:
        log.info("%s listening", name, extra={"port": port})
        print(f"switchboard {name} listening on port {port}", flush=True)

    return started


def cmd_config(settings: Settings) -> int:
    rows = describe(settings)
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key.ljust(width)} = {value}")
    return 0


def cmd_turn_config(settings: Settings, out: Path | None, allow_loopback: bool) -> int:
    paths = KeyPaths.from_settings(settings)
    previous = settings.turn.previous_secret_file
    secrets = CoturnSecrets(
        current=load_turn_secret(paths.turn_secret),
        previous=load_turn_secret(Path(previous)) if previous else None,
    )
    text = render_config(settings.turn, secrets, allow_loopback=allow_loopback)
    if out is None:
        sys.stdout.write(text)
        return 0
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(out, 0o600)
    print(f"wrote {out} (mode 0600; it holds the TURN secret)")
    return 0

