"""Sign-in abuse limits: what keeps the open doors (register, login, verify, resend, forgot, reset)
from being used to guess codes and passwords, flood a mailbox or tell which emails have accounts.

Every limit that names an email is keyed by the address (its SHA-256), not by an account, so it
acts the same whether or not an account has the address: the answers reveal nothing. All state is
in Redis (``keyspace.code_failures``, ``keyspace.auth_mails``, ``keyspace.rate_window``).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from control_api.errors import RateLimited, Unavailable
from control_api.limits import RateLimits
from switchboard.keyspace import auth_mails, code_failures
from switchboard.redis_client import atomic_pipeline

MAIL_WINDOW_S = 3600


def email_digest(email: str) -> str:
    """The key of an address in Redis: case-insensitive, and no address in clear."""
    return hashlib.sha256(email.strip().lower().encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class AuthLimitSettings:
    """The slice of ``ApiSettings`` these limits read (see its docstrings)."""

    per_ip_per_min: int
    per_email_per_min: int
    code_failures: int
    code_lockout_s: int
    mails_per_hour: int
    answer_floor_s: float


class AuthLimits:
    """Counts and refuses; each method is one Redis round trip."""

    def __init__(self, redis: Redis, rates: RateLimits, settings: AuthLimitSettings) -> None:
        self._redis = redis
        self._rates = rates
        self.settings = settings

    async def admit(self, ip: str, email: str) -> None:
        """Counts one sign-in request against its address and the email it names; RateLimited (429)
        over either."""
        s = self.settings
        try:
            by_ip, by_email = await self._rates.hit_many(
                [("auth-ip", ip, s.per_ip_per_min), ("auth-email", email_digest(email), s.per_email_per_min)]
            )
        except RedisError:
            raise Unavailable("sign-in limits are unreachable; retry shortly", 1) from None
        if not by_ip.allowed:
            raise RateLimited(f"more than {s.per_ip_per_min} sign-in requests a minute from this address",
                              by_ip.retry_after_s)
        if not by_email.allowed:
            raise RateLimited(f"more than {s.per_email_per_min} sign-in requests a minute for this email",
                              by_email.retry_after_s)

    async def take_code_try(self, purpose: str, email: str) -> None:
        """Spends one of the address's tries at a ``purpose`` code *before* the code is compared, so
        concurrent guesses cannot all pass a check made before any of them counted. RateLimited
        (429, Retry-After) once ``code_failures`` tries were spent: locked until ``code_lockout_s``
        after the last counted try (tries refused while locked do not extend it). A right code
        clears the count (:meth:`code_spent`)."""
        key = code_failures(purpose, email_digest(email))
        try:
            async with atomic_pipeline(self._redis) as pipe:
                pipe.incr(key)
                pipe.ttl(key)
                tries, ttl = await pipe.execute()
            if tries > self.settings.code_failures:
                if ttl < 0:  # a count left without expiry (a crash between the two steps): bound it
                    await self._redis.expire(key, self.settings.code_lockout_s)
                    ttl = self.settings.code_lockout_s
                raise RateLimited(f"too many wrong codes for this email; every code is refused for "
                                  f"{self.settings.code_lockout_s // 60} minutes after the last wrong one",
                                  max(1, int(ttl)))
            await self._redis.expire(key, self.settings.code_lockout_s)
        except RedisError:
            raise Unavailable("sign-in limits are unreachable; retry shortly", 1) from None

    async def code_spent(self, purpose: str, email: str) -> None:
        """A right code: the address starts afresh."""
        try:
            await self._redis.delete(code_failures(purpose, email_digest(email)))
        except RedisError:
            pass  # the count expires on its own

    async def may_mail(self, email: str) -> bool:
        """Counts one sign-in mail to ``email``; False (send nothing) past ``mails_per_hour``."""
        key = auth_mails(email_digest(email))
        try:
            async with atomic_pipeline(self._redis) as pipe:
                pipe.set(key, 0, ex=MAIL_WINDOW_S, nx=True)
                pipe.incr(key)
                _, sent = await pipe.execute()
        except RedisError:
            raise Unavailable("sign-in limits are unreachable; retry shortly", 1) from None
        return int(sent) <= self.settings.mails_per_hour

    async def answer_floor(self, started: float) -> None:
        """Waits until ``answer_floor_s`` after ``started`` (``time.monotonic()``): the answers that
        must not tell whether an account exists take the same time either way."""
        await asyncio.sleep(max(0.0, started + self.settings.answer_floor_s - time.monotonic()))
