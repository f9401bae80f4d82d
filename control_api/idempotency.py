"""``Idempotency-Key`` on creating POSTs: the first answer is saved and replayed for the same key.

The key is reserved with ``SET NX`` before the handler runs, so two concurrent requests with one key
cannot both act: the second gets 409 while the first is in flight. A request is its method, path
and a digest of its raw body (JSON or upload): reusing a key with a different request is refused
(422), as Stripe does. Refusals (4xx) free the key for a corrected retry.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from control_api.errors import Conflict, ValidationFailed
from switchboard.keyspace import idempotency

TTL_S = 24 * 3600
PENDING_TTL_S = 60


@dataclass(frozen=True)
class SavedReply:
    """A saved answer."""

    status: int
    """Its HTTP status."""
    body: Any
    """Its JSON body."""


def _fingerprint(request: str) -> str:
    return hashlib.sha256(request.encode()).hexdigest()


class IdempotencyStore:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def begin(self, scope: str, key: str, request: str) -> SavedReply | None:
        """None: the caller should act (the key is now reserved); else the answer to replay."""
        # Printable ASCII only: bytes a header parser kept as surrogates must never reach a Redis key.
        if not (1 <= len(key) <= 200 and key.isascii() and key.isprintable()):
            raise ValidationFailed({"Idempotency-Key": "must be 1-200 printable ASCII characters"})
        name = idempotency(scope, key)
        pending = json.dumps({"state": "pending", "request": _fingerprint(request)})
        if await self._redis.set(name, pending, nx=True, ex=PENDING_TTL_S):
            return None
        raw = await self._redis.get(name)
        if raw is None:  # expired between the two calls: try once more
            if await self._redis.set(name, pending, nx=True, ex=PENDING_TTL_S):
                return None
            raise Conflict("a request with this Idempotency-Key is in progress")
        saved = json.loads(raw)
        if saved["request"] != _fingerprint(request):
            raise ValidationFailed({"Idempotency-Key": "was used with a different request"})
        if saved["state"] == "pending":
            raise Conflict("a request with this Idempotency-Key is in progress")
        return SavedReply(saved["status"], saved["body"])

    async def finish(self, scope: str, key: str, request: str, status: int, body: Any) -> None:
        saved = {"state": "done", "request": _fingerprint(request), "status": status, "body": body}
        await self._redis.set(idempotency(scope, key), json.dumps(saved, default=str), ex=TTL_S)

    async def abandon(self, scope: str, key: str) -> None:
        await self._redis.delete(idempotency(scope, key))
