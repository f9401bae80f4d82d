"""Receiving Switchboard webhooks: check a delivery's signature before trusting its body.

Each delivery is a POST with a JSON body ``{"id", "type", "created", "data"}`` and the header
``Switchboard-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]``, where each ``v1`` is
HMAC-SHA256 keyed with an endpoint secret over ``"<t>." + raw body`` (two ``v1`` while a rotated
secret is still live). Deliveries are at least once: keep the ``id`` of events handled and skip
repeats.

    from switchboard_client.webhooks import verify, WebhookSignatureError

    try:
        event = verify(raw_body, request.headers["Switchboard-Signature"], secret)
    except WebhookSignatureError as exc:
        return 400, str(exc)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

HEADER = "Switchboard-Signature"
"""The name of the signature header."""


class WebhookSignatureError(ValueError):
    """The delivery is not proven to come from Switchboard (or is too old to trust); the message says why."""


def _parse(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise WebhookSignatureError(f"the timestamp t={value!r} is not a number") from None
        elif key == "v1":
            signatures.append(value)
    if timestamp is None:
        raise WebhookSignatureError(f"no timestamp (t=...) in the {HEADER} header")
    if not signatures:
        raise WebhookSignatureError(f"no v1 signature in the {HEADER} header")
    return timestamp, signatures


def verify(payload: bytes, header: str, secret: str, tolerance_s: float = 300, *,
           now: float | None = None) -> dict[str, Any]:
    """The event (the parsed JSON body) when ``header`` signs ``payload`` with ``secret`` and its
    timestamp is within ``tolerance_s`` of ``now`` (default: the clock); else
    :class:`WebhookSignatureError` saying what is wrong. Pass the raw bytes as received: a re-encoded
    body does not match."""
    if not isinstance(payload, bytes | bytearray):
        raise TypeError("payload must be the raw body bytes")
    if not header:
        raise WebhookSignatureError(f"the {HEADER} header is missing")
    timestamp, signatures = _parse(header)
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + bytes(payload), hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, s) for s in signatures):
        raise WebhookSignatureError("no signature matches this secret and body (wrong secret, or altered body)")
    age = (time.time() if now is None else now) - timestamp
    if abs(age) > tolerance_s:
        raise WebhookSignatureError(f"the signature is {age:.0f} s old, over the {tolerance_s:g} s tolerance "
                                    "(a replay, or a clock off)")
    try:
        event = json.loads(payload)
    except ValueError:
        raise WebhookSignatureError("the signed body is not JSON") from None
    if not isinstance(event, dict):
        raise WebhookSignatureError("the signed body is not a JSON object")
    return event
