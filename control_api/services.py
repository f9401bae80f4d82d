"""The API's shared resources, opened once per app and reached by handlers under one ``web.AppKey``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import async_sessionmaker

from control_api.models import Role
from control_api.types import Mailer, Storage
from switchboard.placement import Placement
from switchboard.settings import ApiSettings
from switchboard.tokens import TokenSigner
from switchboard.tracing import Tracing

if TYPE_CHECKING:
    from control_api.access import AccessTokens
    from control_api.auth_limits import AuthLimits
    from control_api.hashing import PasswordWork
    from control_api.ice import IceServerIssuer
    from control_api.idempotency import IdempotencyStore
    from control_api.limits import RateLimits
    from control_api.mail import Postman
    from control_api.realtime import Realtime
    from control_api.revocation import Revocations


@dataclass(frozen=True)
class Caller:
    """The account an access token names, as of when the token was issued (15 minutes at most)."""

    user_id: uuid.UUID
    """The account's id."""
    role: Role
    """user, moderator or admin (re-checked in Postgres for privileged grants)."""
    premium: bool
    """Premium tier: a larger rate limit."""
    iat: int = 0
    """When the access token was issued (unix seconds); already checked against the revocation epoch."""
    premium_now: bool | None = None
    """The premium tier as Redis marks it on this request (payments writes the mark on every change;
    read with the revocation epoch, no extra round trip); None: never marked, Postgres's record stands."""


@dataclass(frozen=True)
class Services:
    """Everything a handler may use; built in the app's cleanup context."""

    settings: ApiSettings
    sessions: async_sessionmaker
    redis: Redis
    passwords: PasswordWork
    """argon2 hashing off the loop, bounded (slots and a short queue; beyond: 503)."""
    auth_limits: AuthLimits
    """Sign-in abuse limits: per address and per email, code lockouts, mails per address."""
    postman: Postman
    """Delivers committed outbox mail in the background (answers never wait on SMTP)."""
    revocations: Revocations
    """Per-account token epochs: revoke (ban, deletion, logout everywhere, password change) and read."""
    access: AccessTokens
    signer: TokenSigner
    """Room and WebSocket tokens for nodes."""
    room_ttl_s: int
    """Lifetime of the signer's tokens."""
    limits: RateLimits
    idempotency: IdempotencyStore
    realtime: Realtime
    storage: Storage
    mailer: Mailer
    ice: IceServerIssuer
    """The STUN/TURN list with a credential for the caller."""
    tracing: Tracing = field(default_factory=Tracing)
    """Spans (off by default): a token reply carries its ``traceparent`` when on."""
    hot: Redis | None = None
    """The token routes' client (:mod:`switchboard.resp`: ~6x cheaper per command than redis-py),
    for the commands it answers; None: ``redis``. Read it through :attr:`hot_redis`."""

    placement: Placement | None = None
    """Where token answers send their socket (built once: its script's digest and registry reader
    are not remade per request); None: one over ``redis`` and :attr:`hot_redis`, made on each use."""

    @property
    def hot_redis(self) -> Redis:
        return self.hot if self.hot is not None else self.redis

    @property
    def placer(self) -> Placement:
        return self.placement if self.placement is not None else Placement(self.redis, reads=self.hot_redis)


SERVICES = web.AppKey("services", Services)
