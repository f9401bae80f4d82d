"""TURN REST credentials, the scheme coturn checks with ``use-auth-secret``.

username = ``<expiry unix time>:<user id>``; password = base64(HMAC-SHA1(shared secret, username)).
coturn recomputes the password from its secret(s) and refuses an expired or altered username.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class TurnCredential:
    """A short-lived TURN login for one user."""

    username: str
    """``<expiry>:<user id>``."""
    password: str
    """base64(HMAC-SHA1(secret, username))."""
    ttl_s: int
    """Seconds it was valid for when minted."""
    expires_at: int
    """Unix time after which coturn refuses it."""


def turn_password(secret: str, username: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()


def mint_credential(secret: str, user_id: str, ttl_s: int, now: float | None = None) -> TurnCredential:
    """A credential for ``user_id`` valid for ``ttl_s`` seconds from ``now``."""
    if not user_id or ":" in user_id:
        raise ValueError("a TURN user id must be non-empty and contain no ':'")
    if ttl_s <= 0:
        raise ValueError("ttl_s must be > 0")
    expires = int(time.time() if now is None else now) + ttl_s
    username = f"{expires}:{user_id}"
    return TurnCredential(username, turn_password(secret, username), ttl_s, expires)
