"""``switchboard``: the composition root, the only module that imports every plane.

    switchboard up                 everything in one process (embedded Redis/Postgres when no URLs)
    switchboard node               one node (signaling + SFU) against SWITCHBOARD_REDIS_URL
    switchboard node drain ID      move a node's clients to other nodes, then stop it
    switchboard nodes [--json]     the node registry: every live node and its load
    switchboard api [migrate]      the control API (or only its migrations)
    switchboard matchmaker         one matchmaker process
    switchboard config             the effective settings, secrets masked
    switchboard ledger check|reconcile   prove the credit ledger; compare it with Stripe
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import logging
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import uvloop
from argon2 import PasswordHasher
from prometheus_client import CollectorRegistry, gc_collector, platform_collector, process_collector

from control_api.accounts import AdminLogin, ensure_admin
from control_api.app import ApiDeps, create_api_app
from control_api.db import open_engine, sessions, upgrade
from control_api.payments.commands import run_ledger_command
from matchmaker.process import MatchmakerDeps, install_matchmaker
from matchmaker.store import RedisTicketStore
from sfu.events import RedisEventSink
from sfu.pool import WorkerPool
from sfu.types import FanoutConfig
from sfu.worker import Worker
from signaling.node import Announce, NodeDeps, drain_on_stop, install_node
from switchboard.embedded import EmbeddedPostgres, EmbeddedRedis
from switchboard.errors import EmbeddedServiceError, PortInUse, SettingsError
from switchboard.health import Readiness, add_health_routes, metrics_app
from switchboard.keys import KeyPaths, ensure_secrets, load_private_key, load_public_key, load_turn_secret
from switchboard.listener import GateLimits, Handshakes
from switchboard.logs import configure_logging
from switchboard.nodes import drain_node, list_nodes
from switchboard.runtime import Gate, Internal, base_app, check_port_free, serve
from switchboard.settings import Settings, describe, load_settings
from switchboard.stripe_emulator import API_KEY, StripeEmulator
from switchboard.tokens import TokenVerifier
from switchboard.tracing import Tracing, TracingSettings
from switchboard_client.loadtest import add_arguments as add_loadtest_arguments
from switchboard_client.loadtest import main as run_loadtest
from turn.coturn import CoturnSecrets, render_config
from turn.ice import ice_servers_for

log = logging.getLogger("switchboard")
WEB_DIR = Path(__file__).resolve().parent.parent / "web"


@dataclass
class Process:
    """One process's shared pieces: its readiness probes and its metrics registry."""

    readiness: Readiness
    registry: CollectorRegistry
    tracing: Tracing = field(default_factory=Tracing)
    """Off unless ``tracing.otlp_endpoint`` is set; closed (flushed) with the root application."""

    @classmethod
    def new(cls, tracing: TracingSettings | None = None, name: str = "up") -> Process:
        registry = CollectorRegistry()
        process_collector.ProcessCollector(registry=registry)
        platform_collector.PlatformCollector(registry=registry)
        gc_collector.GCCollector(registry=registry)
        return cls(Readiness(), registry, Tracing.from_settings(tracing or TracingSettings(), name))

    def app(self, public_metrics: bool = True, socket_urls: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
        """The process's root application; ``/metrics`` on it only when ``public_metrics``; its pages
        may open sockets to the nodes at ``socket_urls``."""
        app = base_app(self.registry, socket_urls=socket_urls)
        add_health_routes(app, self.readiness, self.registry, metrics=public_metrics)

        async def close_tracing(_app) -> None:  # type: ignore[no-untyped-def]
            self.tracing.close()

        app.on_cleanup.append(close_tracing)
        return app

    def metrics_listener(self, host: str, port: int, setting: str) -> Internal:
        """``/metrics`` on a listener of its own (production processes); ``setting`` moves its port."""
        return Internal(metrics_app(self.registry), host, port, setting)


def _need(value: str, key: str) -> str:
    if not value:
        raise SettingsError(key, f"is required here (set SWITCHBOARD_{key.upper()}); only `up` embeds one")
    return value


async def _prepare_database(settings: Settings, database_url: str) -> AdminLogin | None:
    await upgrade(database_url)
    engine = open_engine(database_url, pool_size=1)
    try:
        return await ensure_admin(sessions(engine), settings.api.admin_email, PasswordHasher())
    finally:
        await engine.dispose()


def _api_deps(settings: Settings, database_url: str, redis_url: str, readiness: Readiness,
              registry: CollectorRegistry | None = None, tracing: Tracing | None = None) -> ApiDeps:
    """The control API's slice of the settings, its signing key and the TURN secret from the secrets dir."""
    paths = KeyPaths.from_settings(settings)
    return ApiDeps(
        settings.api, database_url, redis_url, readiness,
        token_key=load_private_key(paths.private_key),
        tokens=settings.tokens,
        media_dir=settings.data_dir / "media",
        turn=settings.turn,
        # Without a TURN host there is nothing to hand out, and no secret to need.
        turn_secret=load_turn_secret(paths.turn_secret) if settings.turn.host else "",
        payments=settings.payments,
        webhooks=settings.webhooks,
        registry=registry,
        tracing=tracing or Tracing(),
    )


def _node_deps(settings: Settings, redis_url: str, readiness: Readiness, *, pool: bool = False,
               announce: Announce | None = None, tracing: Tracing | None = None,
               registry: CollectorRegistry | None = None, handshakes: Handshakes | None = None) -> NodeDeps:
    """The node's slice: token verifier (public key only), the SFU, the queue.

    ``pool``: the SFU is a WorkerPool of ``settings.node.workers`` processes (``switchboard node``);
    otherwise one in-process Worker (``switchboard up``: one process, the all-in-one for a laptop).
    """
    @contextlib.asynccontextmanager
    async def open_media(redis):  # type: ignore[no-untyped-def]
        node = settings.node
        fanout = FanoutConfig(settings.sfu.fanout, settings.sfu.fanout_batch, settings.sfu.fanout_flush_ms,
                               settings.sfu.fanout_srtp, settings.sfu.worker_slice_us)
        media: Worker | WorkerPool
        if pool:
            media = WorkerPool(workers=node.workers, addresses=node.rtc_addresses, announced=node.announced_address,
                               redis_url=redis_url, viewers_per_worker=node.viewers_per_worker,
                               keyframe_interval_s=settings.sfu.keyframe_interval_s,
                               clip_seconds=settings.sfu.clip_seconds,
                               pipe_secret=settings.cascade.secret.encode(), pipe_host=_pipe_address(settings),
                               fanout=fanout)
        else:
            media = Worker(addresses=node.rtc_addresses, announced=node.announced_address,
                           events=RedisEventSink(redis), keyframe_interval_s=settings.sfu.keyframe_interval_s,
                           clip_seconds=settings.sfu.clip_seconds, fanout=fanout)
        await media.start()
        try:
            yield media
        finally:
            await media.close()

    verifier = TokenVerifier(load_public_key(KeyPaths.from_settings(settings).public_key),
                             issuer=settings.tokens.issuer)
    paths = KeyPaths.from_settings(settings)
    turn_secret = load_turn_secret(paths.turn_secret) if settings.turn.host else ""
    return NodeDeps(settings.node, redis_url, readiness, WEB_DIR, verifier=verifier, open_media=open_media,
                    open_tickets=lambda redis: RedisTicketStore(redis, settings.matchmaker.ticket_ttl_s),
                    ice_servers=lambda grants: ice_servers_for(settings.turn, turn_secret, grants.sub,
                                                                relay=grants.verified),
                    announce=announce, tracing=tracing or Tracing(), registry=registry, handshakes=handshakes,
                    cascade=settings.cascade if announce is not None else None)


def _pipe_address(settings: Settings) -> str:
    """Where this node's pipes between nodes bind (and other nodes send): ``cascade.pipe_address``,
    else the node's media address."""
    node = settings.node
    return settings.cascade.pipe_address or node.announced_address or (node.rtc_addresses[0]
                                                                       if node.rtc_addresses else "127.0.0.1")


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
    install_node(app, _node_deps(settings, redis_url, proc.readiness, tracing=proc.tracing, registry=proc.registry))
    install_matchmaker(app, MatchmakerDeps(settings.matchmaker, redis_url, proc.readiness, proc.registry))
    app.add_subapp("/api", create_api_app(_api_deps(settings, database_url, redis_url, proc.readiness, proc.registry,
                                                     proc.tracing)))
    return app


async def _up(settings: Settings, redis_url: str, database_url: str, children: list) -> None:  # type: ignore[type-arg]
    admin = await _prepare_database(settings, database_url)
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
    redis_url = _need(settings.redis_url, "redis_url")
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
                        pipe_address=_pipe_address(settings), viewer_cap=settings.cascade.viewers_per_node)
    handshakes = Handshakes(node.ws_max_handshakes)
    gate = Gate(handshakes, GateLimits(per_pass=node.ws_gate_per_pass, queue=node.ws_gate_queue,
                                       wait_s=node.ws_gate_wait_s,
                                       retry_after_s=max(1, math.ceil(node.overload_retry_after_s)),
                                       rate_per_s=node.ws_max_connects_per_s))
    install_node(app, _node_deps(settings, redis_url, proc.readiness, pool=True, announce=announce,
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
    ok, text = uvloop.run(drain_node(_need(settings.redis_url, "redis_url"), node_id))
    print(text, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


def cmd_api(settings: Settings, migrate_only: bool) -> int:
    redis_url = _need(settings.redis_url, "redis_url")
    database_url = _need(settings.database_url, "database_url")
    if migrate_only:
        uvloop.run(upgrade(database_url))
        print("migrations are at head")
        return 0
    proc = Process.new(settings.tracing, "api")
    app = proc.app(public_metrics=False)
    app.add_subapp("/api", create_api_app(_api_deps(settings, database_url, redis_url, proc.readiness, proc.registry,
                                                     proc.tracing)))
    metrics = proc.metrics_listener(settings.metrics.host, settings.metrics.api_port, "metrics.api_port")
    uvloop.run(serve(app, settings.api.host, settings.api.port, on_started=frozen_once_started(_announce("api")),
                     internal=metrics))
    return 0


def cmd_matchmaker(settings: Settings) -> int:
    redis_url = _need(settings.redis_url, "redis_url")
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switchboard", description="Switchboard realtime media server")
    parser.add_argument("--config", type=Path, help="TOML settings file (also $SWITCHBOARD_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="everything in one process, embedded Redis/Postgres when no URLs are set")
    up.add_argument("--stripe-emulator", action="store_true", help="run localstripe and point payments at it")
    node = sub.add_parser("node", help="one node: signaling WebSockets and the SFU; `node drain ID` drains one")
    node.add_argument("action", nargs="?", choices=["serve", "drain"], default="serve")
    node.add_argument("node_id", nargs="?", help="drain: the node's id (see `switchboard nodes`)")
    node.add_argument("--workers", type=int, help="SFU worker processes (default: one per core)")
    nodes = sub.add_parser("nodes", help="the node registry: every live node and its load")
    nodes.add_argument("--json", action="store_true", help="JSON instead of a table")
    api = sub.add_parser("api", help="the control API")
    api.add_argument("action", nargs="?", choices=["serve", "migrate"], default="serve")
    sub.add_parser("matchmaker", help="one matchmaker process")
    sub.add_parser("config", help="print the effective settings (secrets masked)")
    turn = sub.add_parser("turn", help="coturn: write its config for this deployment")
    turn.add_argument("action", choices=["config"])
    turn.add_argument("--out", type=Path, help="write here (mode 0600) instead of standard output")
    turn.add_argument("--allow-loopback", action="store_true", help="tests only: relay to loopback peers")
    ledger = sub.add_parser("ledger", help="the credit ledger: check its books, reconcile it with Stripe")
    ledger.add_argument("action", choices=["check", "reconcile"])
    ledger.add_argument("--days", type=int, default=90, help="reconcile: Stripe payments of the last N days")
    loadtest = sub.add_parser("loadtest", help="viewers and publishers of shows against any deployment (the SDK)")
    add_loadtest_arguments(loadtest)
    return parser


PORT_SETTING = {"up": "http.port", "node": "node.port", "api": "api.port", "matchmaker": "matchmaker.port"}
"""The setting that moves each command's listening port (named when the port is taken)."""


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "loadtest":  # a client of any deployment: no server settings
        return run_loadtest(args)
    environ = dict(os.environ)
    if getattr(args, "workers", None) is not None:
        environ["SWITCHBOARD_NODE_WORKERS"] = str(args.workers)
    try:
        settings = load_settings(args.config, environ)
        configure_logging(settings.log)
        if args.command == "up":
            return cmd_up(settings, stripe_emulator=args.stripe_emulator)
        if args.command == "ledger":
            database_url = _need(settings.database_url, "database_url")
            return uvloop.run(run_ledger_command(args.action, database_url, settings.payments, days=args.days))
        if args.command == "node" and args.action == "drain":
            return cmd_drain(settings, args.node_id)
        if args.command == "node":
            return cmd_node(settings)
        if args.command == "nodes":
            print(uvloop.run(list_nodes(_need(settings.redis_url, "redis_url"), args.json)))
            return 0
        if args.command == "api":
            return cmd_api(settings, migrate_only=args.action == "migrate")
        if args.command == "matchmaker":
            return cmd_matchmaker(settings)
        if args.command == "turn":
            return cmd_turn_config(settings, args.out, args.allow_loopback)
        return cmd_config(settings)
    except (SettingsError, EmbeddedServiceError) as exc:
        print(f"switchboard: {exc}", file=sys.stderr)
        return 2
    except PortInUse as exc:
        key = exc.setting or PORT_SETTING.get(args.command, "http.port")
        env = "SWITCHBOARD_" + key.replace(".", "_").upper()
        print(f"switchboard: {exc}; choose another port with the setting {key} (e.g. {env}={exc.port + 1})",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
