"""Writing events: in the caller's transaction, once per event id, fanned out to the endpoints then."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, any_, func, literal, or_, select, true
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from control_api.webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent

EVENT_TYPES = (
    "room_started", "room_finished", "participant_joined", "participant_left", "track_published", "match_made",
    "report_created", "clip_saved", "credits_purchased", "credits_refunded", "premium_changed",
)
"""Every type an endpoint may ask for (docs/webhooks.md describes each one's ``data``)."""


def purchase_data(purchase: Any, **more: Any) -> dict[str, Any]:
    """A credit pack purchase's ``data`` (a ``payments.models.Purchase``; refunds add ``kind``...)."""
    return {"user_id": str(purchase.account_id), "intent_id": purchase.intent_id, "pack": purchase.pack,
            "credits": purchase.credits, "amount": purchase.amount, "currency": purchase.currency, **more}


def new_id() -> str:
    return f"evt_{uuid.uuid4().hex}"


async def record(session: AsyncSession, kind: str, data: dict[str, Any], *, event_id: str | None = None) -> str | None:
    """Adds the event and one pending delivery per endpoint that takes ``kind``, in ``session``'s
    transaction. Returns the event id, or None when ``event_id`` was recorded already (a replay)."""
    if kind not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {kind!r}")
    eid = event_id or new_id()
    made = await session.scalar(insert(WebhookEvent).values(id=eid, type=kind, data=data)
                                .on_conflict_do_nothing(index_elements=["id"]).returning(WebhookEvent.id))
    if made is None:
        return None
    takes = or_(func.cardinality(WebhookEndpoint.events) == 0, literal(kind) == any_(WebhookEndpoint.events))
    await session.execute(insert(WebhookDelivery).from_select(
        ["endpoint_id", "event_id"], select(WebhookEndpoint.id, literal(eid)).where(takes)))
    return eid


def recording(kind: str, data: dict[str, Any], *, event_id: str) -> Select[tuple[str]]:
    """:func:`record` as one statement (one round trip): the event and its deliveries, answering the
    event id, or nothing when ``event_id`` was recorded already (a replay)."""
    if kind not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {kind!r}")
    made = (insert(WebhookEvent).values(id=event_id, type=kind, data=data)
            .on_conflict_do_nothing(index_elements=["id"]).returning(WebhookEvent.id).cte("made"))
    takes = or_(func.cardinality(WebhookEndpoint.events) == 0, literal(kind) == any_(WebhookEndpoint.events))
    # A data-modifying CTE runs once whether or not the outer query reads it; the deliveries see the
    # event the CTE before them inserted (the foreign key is checked at the statement's end).
    sent = insert(WebhookDelivery).from_select(["endpoint_id", "event_id"], select(WebhookEndpoint.id, made.c.id)
                                               .join_from(WebhookEndpoint, made, true()).where(takes),
                                               include_defaults=False).cte("sent")  # the columns' server defaults
    return select(made.c.id).add_cte(sent)


async def record_now(engine: AsyncEngine, kind: str, data: dict[str, Any], *, event_id: str) -> str | None:
    """:func:`recording` committed on its own, for a change committed by another store (the ledger):
    ``event_id`` must be derived from that change's own id, so that redoing the change (a retried
    Stripe webhook) records the event once even if the process died between the two commits.
    ``engine``: best an autocommit one (``Ledger.engine``: one round trip)."""
    async with engine.begin() as conn:  # on an autocommit engine: no BEGIN or COMMIT of its own
        return await conn.scalar(recording(kind, data, event_id=event_id))
