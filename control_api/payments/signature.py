"""Stripe's webhook signature scheme: ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]`` where each
``v1`` is HMAC-SHA256 of ``"<t>.<raw body>"`` under the endpoint's secret. Several ``v1`` appear
while a secret is being rolled; any one matching is enough. Pure functions, no I/O."""

from __future__ import annotations

import hashlib
import hmac
import time

from control_api.errors import BadRequest


class BadSignature(BadRequest):
    """The signature is missing, malformed, wrong or outside the tolerance."""


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """The header Stripe would send (tests, the Checkout fake and the bench sign with it)."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(body: bytes, header: str | None, secret: str, *, tolerance_s: int = 300, now: float | None = None) -> int:
    """The signed timestamp when ``header`` signs ``body`` with ``secret`` within ``tolerance_s``
    (either way); raises BadSignature otherwise. Unknown schemes (``v0``) are ignored."""
    if not secret:
        raise BadSignature("webhooks are not configured (no signing secret)")
    if not header:
        raise BadSignature("missing Stripe-Signature")
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise BadSignature("malformed Stripe-Signature timestamp") from None
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise BadSignature("Stripe-Signature needs t= and at least one v1=")
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise BadSignature("no v1 signature matches")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise BadSignature(f"signature timestamp outside the {tolerance_s} s tolerance")
    return timestamp
