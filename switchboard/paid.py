"""Paid live features between nodes and the control API: the Redis keys and the billing stream.

Nodes never touch Postgres. What a node must know to enforce payment, the API mirrors into Redis
(a creator's per-minute call price, a room's ticket price); what the API must do with money, a node
asks for on the billing stream (:data:`BILLING_STREAM`), which the API consumes in a group and acts
on idempotently (every ledger operation id is derived from the entry, never from the entry id).

Paid call, minute ``k`` (1-based; docs/payments.md): the node asks ``hold`` for minute 1 before the
call rings and waits for the answer on :func:`meter_reply`; after the accept it asks ``hold`` for
minute ``k + 1`` a little before minute ``k`` ends and ``post`` for minute ``k`` when it ends; the
API extends ``paid_until_ms`` in the call's :func:`call_meter` hash after each hold. When
``paid_until_ms`` passes without an extension the node ends the call. ``end`` (any hangup) tells
the API how many minutes started: it posts those held and voids the rest. Every hold has a timeout,
so a crashed node or API never leaves credits held for long.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

BILLING_STREAM = "billing"
"""Stream: nodes' requests about money (paid-call minutes, the end of a paid show)."""
BILLING_GROUP = "control_api"
"""The control API's consumer group on :data:`BILLING_STREAM`."""
METER_TTL_S = 6 * 3600
"""A paid call's meter hash outlives any call (a call's keys expire after as long)."""
LIVE_SHOW_TTL_S = 12 * 3600
"""A live show's key outlives any show; a node that died mid-show leaves it at most this long."""
GIFT = "show.gift"
"""The message type the API publishes on the show owner's user channel; the show's node relays it."""
OPS = ("hold", "post", "end", "show_ended")


def call_price(user_id: str) -> str:
    """String (credits per minute; absent or 0: free): written by the API when a creator sets it."""
    return f"price:call:{user_id}"


def room_price(room: str) -> str:
    """String (credits per ticket; absent or 0: free): the room's ticket price, written by the API."""
    return f"price:room:{room}"


def live_show(room: str) -> str:
    """Hash ``show_id``, ``started_ms``, ``paid`` (``1``/``0``): the show live in ``room`` now, written
    by its node at ``show.create`` and deleted when it ends. The API sells tickets for ``show_id``."""
    return f"show:live:{room}"


def call_meter(call_id: str) -> str:
    """Hash of a paid call: ``caller``, ``callee``, ``minute_ms`` (node, at invite); ``price``,
    ``held`` (minutes held so far) (API); ``started_ms`` (node, at accept); ``paid_until_ms`` (API
    after each hold; the node at accept)."""
    return f"call:meter:{{{call_id}}}"  # one hash tag per call: written together (Redis Cluster)


def meter_reply(call_id: str) -> str:
    """List: the API's answer to the first minute's hold (``ok``, ``insufficient_credits``, ``error``)."""
    return f"call:meter:reply:{{{call_id}}}"


@dataclass(frozen=True)
class BillingEntry:
    """One request on the billing stream. ``op``: ``hold`` / ``post`` (``call``, ``minute``),
    ``end`` (``call``, ``minutes`` started), ``show_ended`` (``room``, ``show_id``, ``started_ms``,
    ``ended_ms``)."""

    op: str
    call: str = ""
    minute: int = 0
    minutes: int = 0
    timeout_s: float = 0.0
    room: str = ""
    show_id: str = ""
    started_ms: int = 0
    ended_ms: int = 0

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"unknown billing op {self.op!r}")
        for name in ("minute", "minutes", "started_ms", "ended_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 53:
                raise ValueError(f"{name} must be a non-negative integer")
        for name in ("call", "room", "show_id"):
            value = getattr(self, name)
            if not isinstance(value, str) or len(value) > 200:
                raise ValueError(f"{name} must be a string of at most 200 characters")
        if self.op in ("hold", "post", "end") and not self.call:
            raise ValueError(f"{self.op} needs a call")
        if self.op in ("hold", "post") and self.minute < 1:
            raise ValueError(f"{self.op} needs a minute from 1")
        if self.op == "show_ended" and not (self.room and self.show_id):
            raise ValueError("show_ended needs a room and a show_id")

    def encode(self) -> dict[str, str]:
        data = {k: v for k, v in self.__dict__.items() if k != "op" and v}
        return {"op": self.op, "data": json.dumps(data, separators=(",", ":"))}

    @classmethod
    def decode(cls, entry: dict[Any, Any]) -> BillingEntry:
        """ValueError (or UnicodeDecodeError) when the entry is malformed."""
        fields = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                  for k, v in entry.items()}
        data = json.loads(fields.get("data", "{}"))
        if not isinstance(data, dict):
            raise ValueError("billing data is not an object")
        allowed = set(cls.__dataclass_fields__) - {"op"}
        if set(data) - allowed:
            raise ValueError(f"unknown billing fields {sorted(set(data) - allowed)}")
        timeout = data.get("timeout_s", 0.0)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise ValueError("timeout_s must be a number")
        return cls(op=str(fields.get("op", "")), **{**data, "timeout_s": float(timeout)})
