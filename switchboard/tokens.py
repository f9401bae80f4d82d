"""Short-lived EdDSA (Ed25519) tokens carrying grants, in the manner of LiveKit's video grants.

The control API holds a :class:`TokenSigner` (private key); nodes hold only a
:class:`TokenVerifier` (public key) and so cannot mint tokens.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from switchboard.errors import TokenError
from switchboard.ids import RoomId, UserId

ALGORITHM = "EdDSA"
_REQUIRED = ["exp", "iat", "sub", "iss", "jti"]


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


_HEADER = _b64(json.dumps({"alg": ALGORITHM, "typ": "JWT"}, separators=(",", ":"), sort_keys=True).encode())
"""The JOSE header every token carries, encoded once (PyJWT's bytes for the same header)."""


def encode_jwt(claims: dict[str, Any], key: Ed25519PrivateKey) -> str:
    """``claims`` (JSON values only) signed with ``key`` as a compact EdDSA JWT: the same bytes as
    ``jwt.encode(claims, key, algorithm="EdDSA")`` without its per-call header, key and claim
    handling (the token routes sign one per request). Verified with PyJWT like any other."""
    signing_input = _HEADER + b"." + _b64(json.dumps(claims, separators=(",", ":")).encode())
    return (signing_input + b"." + _b64(key.sign(signing_input))).decode("ascii")


@dataclass(frozen=True, slots=True)
class Grants:
    """What the bearer may do. Verified on every door of a node."""

    sub: UserId
    """The user the token was issued to."""
    room: RoomId | None = None
    """The room this token opens; None for a socket-level token (no room yet)."""
    publish: bool = False
    """May publish media (broadcaster)."""
    subscribe: bool = False
    """May consume media (viewer)."""
    hidden: bool = False
    """Invisible in rosters, counts, events, stats and SDP (moderator taps only)."""
    moderate: bool = False
    """May end rooms and act on other participants."""
    premium: bool = False
    """The account pays for premium (the matchmaker's premium filters). Set by the control API from
    the account record; a node trusts only this claim, never a client's word."""
    verified: bool = False
    """The account's email is verified. Unverified accounts may watch but not publish, call, match or
    relay (the node refuses those doors); set by the control API from the account record."""
    ticket: str = ""
    """A paid show's ticket: the id of the show session (``paid.live_show``) it was bought for; the
    node admits a viewer to a paid show only with the ticket of the show live now. Empty: none."""
    exp: int = 0
    """Expiry, unix seconds (filled in by the signer)."""
    iat: int = 0
    """Issue time, unix seconds (filled in by the signer). A node refuses a token issued before the
    account's revocation epoch (``keyspace.token_epoch``): bans, deletions, logouts, resets."""
    jti: str = ""
    """Unique token id (filled in by the signer); lets the audit log name one issue."""

    def __post_init__(self) -> None:
        if not self.sub:
            raise ValueError("grants need a subject (sub)")
        if self.hidden and not self.moderate:
            raise ValueError("a hidden grant is for moderators only (needs moderate)")


class TokenSigner:
    """Mints tokens. Lives in the control API only."""

    def __init__(self, private_key: Ed25519PrivateKey, *, issuer: str, ttl_s: int) -> None:
        self._key = private_key
        self._issuer = issuer
        self._ttl_s = ttl_s

    def sign(self, grants: Grants, *, ttl_s: int | None = None, now: float | None = None) -> str:
        issued = int(time.time() if now is None else now)
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "sub": grants.sub,
            "iat": issued,
            "exp": issued + (self._ttl_s if ttl_s is None else ttl_s),
            "jti": grants.jti or uuid.uuid4().hex,
            "publish": grants.publish,
            "subscribe": grants.subscribe,
            "hidden": grants.hidden,
            "moderate": grants.moderate,
            "premium": grants.premium,
            "verified": grants.verified,
        }
        if grants.room is not None:
            claims["room"] = grants.room
        if grants.ticket:
            claims["ticket"] = grants.ticket
        return encode_jwt(claims, self._key)


class TokenVerifier:
    """Checks signature, algorithm, issuer and expiry; returns the grants or raises TokenError."""

    def __init__(self, public_key: Ed25519PublicKey, *, issuer: str, leeway_s: int = 5) -> None:
        self._key = public_key
        self._issuer = issuer
        self._leeway_s = leeway_s

    def verify(self, token: str) -> Grants:
        if not token or not isinstance(token, str):
            raise TokenError("token missing")
        try:
            # algorithms is fixed: "none" and HMAC-with-public-key confusion are refused here.
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                issuer=self._issuer,
                leeway=self._leeway_s,
                options={"require": _REQUIRED},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("token expired") from None
        except jwt.InvalidTokenError as exc:
            raise TokenError(f"token invalid: {exc}") from None
        try:
            return Grants(
                sub=UserId(str(claims["sub"])),
                room=RoomId(str(claims["room"])) if claims.get("room") else None,
                publish=claims.get("publish") is True,
                subscribe=claims.get("subscribe") is True,
                hidden=claims.get("hidden") is True,
                moderate=claims.get("moderate") is True,
                premium=claims.get("premium") is True,
                verified=claims.get("verified") is True,
                ticket=claims["ticket"] if isinstance(claims.get("ticket"), str) else "",
                exp=int(claims["exp"]),
                iat=int(claims["iat"]),
                jti=str(claims["jti"]),
            )
        except (TypeError, ValueError) as exc:
            raise TokenError(f"token invalid: {exc}") from None
