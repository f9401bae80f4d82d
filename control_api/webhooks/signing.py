"""The signature header (Stripe's scheme): ``Switchboard-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>]``.

Each ``v1`` is HMAC-SHA256, keyed with an endpoint secret, over ``"<t>." + raw body``; during a
rotation the header carries one ``v1`` per live secret. ``switchboard_client.webhooks.verify`` checks it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

HEADER = "Switchboard-Signature"


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def header(secrets_: list[str], timestamp: int, body: bytes) -> str:
    return ",".join([f"t={timestamp}", *(f"v1={signature(s, timestamp, body)}" for s in secrets_)])
