"""How the composition root builds each plane's dependencies from the settings: the process's shared
pieces (:class:`Process`), the control API's and the node's slices, the database made ready."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

from argon2 import PasswordHasher
from prometheus_client import CollectorRegistry, gc_collector, platform_collector, process_collector

from control_api.accounts import AdminLogin, ensure_admin
from control_api.app import ApiDeps
from control_api.db import open_engine, sessions, upgrade
from matchmaker.store import RedisTicketStore
from sfu.events import RedisEventSink
from sfu.pool import WorkerPool
from sfu.types import FanoutConfig
from sfu.worker import Worker
from signaling.node import Announce, NodeDeps
from switchboard.errors import SettingsError
from switchboard.health import Readiness, add_health_routes, metrics_app
from switchboard.keys import KeyPaths, load_private_key, load_public_key, load_turn_secret
from switchboard.listener import Handshakes
from switchboard.runtime import Internal, base_app
from switchboard.settings import Settings
from switchboard.tokens import TokenVerifier
from switchboard.tracing import Tracing, TracingSettings
from turn.ice import ice_servers_for

WEB_DIR = Path(__file__).resolve().parent.parent.parent / "web"


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



def need(value: str, key: str) -> str:
    if not value:
        raise SettingsError(key, f"is required here (set SWITCHBOARD_{key.upper()}); only `up` embeds one")
    return value


async def prepare_database(settings: Settings, database_url: str) -> AdminLogin | None:
    await upgrade(database_url)
    engine = open_engine(database_url, pool_size=1)
    try:
        return await ensure_admin(sessions(engine), settings.api.admin_email, PasswordHasher())
    finally:
        await engine.dispose()


def api_deps(settings: Settings, database_url: str, redis_url: str, readiness: Readiness,
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


def node_deps(settings: Settings, redis_url: str, readiness: Readiness, *, pool: bool = False,
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
                               pipe_secret=settings.cascade.secret.encode(), pipe_host=pipe_address(settings),
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


def pipe_address(settings: Settings) -> str:
    """Where this node's pipes between nodes bind (and other nodes send): ``cascade.pipe_address``,
    else the node's media address."""
    node = settings.node
    return settings.cascade.pipe_address or node.announced_address or (node.rtc_addresses[0]
                                                                       if node.rtc_addresses else "127.0.0.1")

