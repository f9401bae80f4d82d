"""The control API as an aiohttp application, mounted at ``/api`` (alone or inside ``switchboard up``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from argon2 import PasswordHasher
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from control_api import (
    accounts,
    audit,
    chat,
    clips,
    deletion,
    gifts,
    ice,
    media,
    notifications,
    openapi,
    paid_calls,
    passwords,
    prices,
    profiles,
    report_review,
    reports,
    rooms,
    sanction_routes,
    social,
    stats,
    tickets,
)
from control_api.access import AccessTokens
from control_api.admission import install_admission
from control_api.auth_limits import AuthLimits, AuthLimitSettings
from control_api.cache import install_read_cache
from control_api.db import open_engine, sessions
from control_api.events import EventsConsumer
from control_api.hashing import PasswordWork
from control_api.http import Call, Reply, Route, install, problem_middleware
from control_api.ice import IceServerIssuer
from control_api.idempotency import IdempotencyStore
from control_api.limits import RateLimits
from control_api.mail import LogMailer, Postman, SmtpMailer
from control_api.payments import lifecycle as payments_lifecycle
from control_api.payments import routes as payments_routes
from control_api.payments.lifecycle import open_gateway
from control_api.payments.types import Gateway
from control_api.realtime import Realtime
from control_api.reference import install_reference
from control_api.revocation import Revocations
from control_api.services import SERVICES, Services
from control_api.storage import LocalDiskStorage
from control_api.types import Mailer
from control_api.webhooks import routes as webhook_routes
from control_api.webhooks.dispatcher import Dispatcher
from control_api.webhooks.metrics import WebhookMetrics
from switchboard.health import Readiness
from switchboard.placement import Placement
from switchboard.redis_client import open_redis
from switchboard.resp import open_hot_redis
from switchboard.settings import ApiSettings, PaymentsSettings, TokenSettings, TurnSettings, WebhookSettings
from switchboard.tasks import stop_task
from switchboard.tokens import TokenSigner
from switchboard.tracing import Tracing

ENGINE = web.AppKey("engine", AsyncEngine)
EVENTS = web.AppKey("events", EventsConsumer)
OPENAPI = web.AppKey("openapi", dict)


@dataclass(frozen=True)
class ApiDeps:
    """What the API needs from the composition root."""

    settings: ApiSettings
    database_url: str
    redis_url: str
    readiness: Readiness
    token_key: Ed25519PrivateKey | None = None
    """Signs access, room and WebSocket tokens; required (the cli loads it from the secrets dir)."""
    tokens: TokenSettings = field(default_factory=TokenSettings)
    """Issuer and lifetimes of the tokens."""
    media_dir: Path = Path("var/media")
    """Where uploads are stored when ``settings.media_dir`` is empty."""
    hasher: PasswordHasher = field(default_factory=PasswordHasher)
    """argon2 parameters (tests pass a cheap one)."""
    mailer: Mailer | None = None
    """None: SMTP when ``settings.smtp_host`` is set, else the log."""
    consume_events: bool = True
    """Run the events-stream consumer in this process."""
    turn: TurnSettings = field(default_factory=TurnSettings)
    """Where clients find coturn, and credential lifetime."""
    turn_secret: str = ""
    """coturn's shared secret; empty: ``/ice-servers`` answers an empty list."""
    payments: PaymentsSettings = field(default_factory=PaymentsSettings)
    """Stripe, the ledger and the catalogue."""
    gateway: Callable[[PaymentsSettings], Gateway | None] = open_gateway
    tracing: Tracing = field(default_factory=Tracing)
    """Request and SQL spans, and the token replies' traceparent (off by default)."""
    """Opens the payment gateway (tests wrap Stripe to add what localstripe lacks)."""
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    """Deliveries to integrators: retries, timeout, concurrency."""
    dispatch_webhooks: bool = True
    """Run the webhook dispatcher in this process."""
    registry: CollectorRegistry | None = None
    """The process's Prometheus registry (webhook metrics); None: metrics kept unexported."""


def all_routes() -> list[Route]:
    """Every operation of the API, as served and as documented."""
    return [
        Route("GET", "/", _index, "Service name and where the OpenAPI document is", "meta", auth=False),
        Route("GET", "/openapi.json", _openapi, "This API's OpenAPI 3.1 document", "meta", auth=False),
        *accounts.routes(), *passwords.routes(), *deletion.routes(), *profiles.routes(), *social.routes(),
        *chat.routes(), *media.routes(), *notifications.routes(), *rooms.routes(), *sanction_routes.routes(),
        *reports.routes(), *report_review.routes(), *audit.routes(), *stats.routes(), *clips.routes(),
        *ice.routes(), *payments_routes.routes(), *prices.routes(), *tickets.routes(), *gifts.routes(),
        *webhook_routes.routes(),
    ]


def create_api_app(deps: ApiDeps) -> web.Application:
    """The ``/api`` sub-application; opens its engine and Redis on start and closes them on stop."""
    if deps.token_key is None:
        raise ValueError("the control API needs its token signing key (ApiDeps.token_key)")
    key = deps.token_key
    traced = deps.tracing.middleware()  # None when tracing is off: no middleware, no span
    app = web.Application(middlewares=[*([traced] if traced else []), problem_middleware],
                          client_max_size=deps.settings.photo_max_bytes + 65536)

    async def resources(app: web.Application) -> AsyncIterator[None]:
        engine = open_engine(deps.database_url)
        deps.tracing.instrument_engine(engine)
        redis = open_redis(deps.redis_url)
        hot = open_hot_redis(deps.redis_url, redis)  # the token routes' commands (switchboard/resp.py)
        app[ENGINE] = engine
        settings = deps.settings
        mailer = deps.mailer or (
            SmtpMailer(settings.smtp_host, settings.smtp_port, settings.mail_from) if settings.smtp_host
            else LogMailer()
        )
        db = sessions(engine)
        limits = RateLimits(hot, per_ip=settings.rate_ip_per_min, per_user=settings.rate_user_per_min,
                            per_premium=settings.rate_premium_per_min)
        revocations = Revocations(redis, reads=hot)
        passwords = await PasswordWork.start(deps.hasher, slots=settings.hash_slots, queue=settings.hash_queue)
        postman = Postman(db, mailer)
        room_ttl = deps.tokens.room_ttl_s
        services = Services(
            settings=settings,
            sessions=db,
            redis=redis,
            passwords=passwords,
            auth_limits=AuthLimits(redis, limits, AuthLimitSettings(
                per_ip_per_min=settings.auth_ip_per_min, per_email_per_min=settings.auth_email_per_min,
                code_failures=settings.code_failures, code_lockout_s=settings.code_lockout_s,
                mails_per_hour=settings.mails_per_hour, answer_floor_s=settings.answer_floor_ms / 1000)),
            postman=postman,
            revocations=revocations,
            access=AccessTokens(key, issuer=deps.tokens.issuer, ttl_s=deps.tokens.access_ttl_s,
                                revocations=revocations),
            signer=TokenSigner(key, issuer=deps.tokens.issuer, ttl_s=room_ttl),
            room_ttl_s=room_ttl,
            limits=limits,
            idempotency=IdempotencyStore(redis),
            realtime=Realtime(redis),
            storage=LocalDiskStorage(Path(settings.media_dir) if settings.media_dir else deps.media_dir),
            mailer=mailer,
            ice=IceServerIssuer(deps.turn, deps.turn_secret, min(deps.turn.ttl_s or room_ttl, room_ttl)),
            tracing=deps.tracing,
            hot=hot,
            placement=Placement(redis, reads=hot),
        )
        app[SERVICES] = services

        async def postgres_probe() -> None:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        deps.readiness.add("postgres", postgres_probe)
        deps.readiness.add("api_redis", redis.ping)
        consumer = EventsConsumer(services)
        app[EVENTS] = consumer
        task = asyncio.create_task(consumer.run()) if deps.consume_events else None
        clip_task = asyncio.create_task(clips.ClipIngest(services).run()) if deps.consume_events else None
        dispatcher = Dispatcher(db, deps.webhooks, WebhookMetrics(deps.registry))
        hooks = asyncio.create_task(dispatcher.run()) if deps.dispatch_webhooks else None
        try:
            yield
        finally:
            if hooks is not None:
                dispatcher.stop()  # ends between queries; a cancel is the last resort
                await asyncio.wait([hooks], timeout=deps.webhooks.timeout_s + 5)
                await stop_task(hooks)
            if clip_task is not None:
                await stop_task(clip_task)
            if task is not None:
                await stop_task(task)
            await postman.close()
            passwords.close()
            await services.limits.close()
            if hot is not redis:
                await hot.aclose()
            await redis.aclose()
            await engine.dispose()

    app.cleanup_ctx.append(resources)
    install_read_cache(app, ENGINE)  # after the services it reads through
    app.cleanup_ctx.append(payments_lifecycle.context(deps.payments, ENGINE, deps.gateway))
    app.cleanup_ctx.append(paid_calls.context(deps.consume_events))
    admission = install_admission(app, deps.settings)  # outermost: a shed request costs no other work
    routes = all_routes()
    app[OPENAPI] = openapi.document(routes)
    admission.prioritize(install(app, routes))
    install_reference(app)
    return app


async def _index(call: Call) -> Reply:
    return Reply({"service": "switchboard control API", "openapi": "/api/openapi.json"})


async def _openapi(call: Call) -> Reply:
    return Reply(call.request.app[OPENAPI])
