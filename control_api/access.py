"""API access tokens (15 minutes, EdDSA JWT with audience ``switchboard-api``) and refresh secrets.

Access tokens carry ``aud``: a node's :class:`switchboard.tokens.TokenVerifier` refuses any token
with an audience it was not told about, so an access token never opens a socket or a room.
Refresh tokens are opaque random strings; Postgres keeps only their SHA-256.
Every door checks an access token against the account's revocation epoch and ban mark (one Redis
MGET, see ``control_api.revocation``): bans, deletions, logouts everywhere and password changes end
it at once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import time
import uuid

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from control_api.errors import Forbidden, Unauthenticated
from control_api.models import Role
from control_api.revocation import Revocations
from control_api.services import Caller
from switchboard.tokens import encode_jwt

AUDIENCE = "switchboard-api"
LEEWAY_S = 5
VERIFIED_CACHE = 10_000
"""Verified access tokens remembered (about one per active user)."""


class AccessTokens:
    """Mints and checks access tokens with the API's Ed25519 key."""

    def __init__(self, key: Ed25519PrivateKey, *, issuer: str, ttl_s: int, revocations: Revocations) -> None:
        self._key = key
        self._public = key.public_key()
        self._issuer = issuer
        self.ttl_s = ttl_s
        self.revocations = revocations
        self._verified: dict[str, tuple[float, Caller]] = {}
        """token -> (valid until, caller): a token's signature is checked once, not on every request."""

    def sign(self, user_id: uuid.UUID, role: Role, premium: bool, now: float | None = None,
             not_before: int = 0) -> str:
        """``not_before``: the account's revocation epoch; a token minted in the very second of a
        revocation (after it) is dated at the epoch so that it lives (within the verifiers' leeway)."""
        issued = max(int(time.time() if now is None else now), not_before)
        claims = {
            "iss": self._issuer,
            "aud": AUDIENCE,
            "sub": str(user_id),
            "iat": issued,
            "exp": issued + self.ttl_s,
            "role": role.value,
            "premium": premium,
        }
        return encode_jwt(claims, self._key)

    def verify(self, token: str) -> Caller:
        known = self._verified.get(token)
        if known is not None and known[0] > time.time():
            return known[1]
        try:
            claims = jwt.decode(
                token,
                self._public,
                algorithms=["EdDSA"],
                audience=AUDIENCE,
                issuer=self._issuer,
                leeway=LEEWAY_S,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            )
            role = Role(claims.get("role", "user"))
            caller = Caller(uuid.UUID(str(claims["sub"])), role, claims.get("premium") is True, int(claims["iat"]))
            if len(self._verified) >= VERIFIED_CACHE:
                self._verified.clear()  # bounded; the live tokens come back at one verify each
            self._verified[token] = (int(claims["exp"]) + LEEWAY_S, caller)
            return caller
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("access token expired; refresh it") from None
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise Unauthenticated("access token invalid") from None

    async def authenticate(self, token: str) -> Caller:
        """:meth:`verify`, then the account's standing (one round trip): a token issued before the
        account's epoch (ban, deletion, logout everywhere, password reset or change) is refused (401);
        any token of an account under a ban is refused (403), whenever it was issued. The caller
        carries the premium mark read with them (``premium_now``)."""
        caller = self.verify(token)
        standing = await self.revocations.standing(caller.user_id)
        if caller.iat < standing.epoch:
            raise Unauthenticated("access token revoked (logged out everywhere, password changed, banned or "
                                  "deleted); log in again")
        if standing.banned:
            raise Forbidden("this account is banned")
        if standing.premium is None:
            return caller
        return dataclasses.replace(caller, premium_now=standing.premium)


def new_secret() -> str:
    """A refresh token or one-time link secret: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """What Postgres stores instead of the secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_code() -> str:
    """A 6-digit email code (verification, password reset)."""
    return f"{secrets.randbelow(1_000_000):06d}"
