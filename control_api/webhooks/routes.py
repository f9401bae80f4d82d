"""The admin doors of webhooks (staff only): endpoints (create, list, delete, rotate) and the delivery log."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, select

from control_api.errors import NotFound, ValidationFailed
from control_api.http import Call, Reply, Route
from control_api.schema import Field, Schema
from control_api.staff import require_staff
from control_api.webhooks import signing
from control_api.webhooks.models import WebhookAttempt, WebhookEndpoint
from control_api.webhooks.outbox import EVENT_TYPES

ROTATION_OVERLAP = timedelta(hours=24)
"""How long the previous secret still signs deliveries after a rotation (receivers switch meanwhile)."""


def check_url(url: str) -> str:
    """An absolute http or https URL with a host; ValidationFailed otherwise."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise ValidationFailed({"url": "is not a URL"}) from None
    if parts.scheme not in ("http", "https"):
        raise ValidationFailed({"url": "must start with http:// or https://"})
    if not host:
        raise ValidationFailed({"url": "must name a host"})
    if parts.username or parts.password:
        raise ValidationFailed({"url": "must not carry credentials (sign with the secret instead)"})
    if any(ch.isspace() for ch in url):
        raise ValidationFailed({"url": "must not contain spaces"})
    return url


def as_json(endpoint: WebhookEndpoint, secret: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"id": str(endpoint.id), "url": endpoint.url, "events": list(endpoint.events),
                           "description": endpoint.description, "created_at": endpoint.created_at.isoformat()}
    if secret:
        out["secret"] = endpoint.secret
    return out


async def _create_webhook(call: Call) -> Reply:
    body = call.body
    url = check_url(body["url"])
    events = sorted(set(body.get("events", [])))
    async with call.services.sessions() as session, session.begin():
        await require_staff(session, call.me.user_id)
        endpoint = WebhookEndpoint(url=url, events=events, description=body.get("description", ""),
                                   secret=signing.new_secret())
        session.add(endpoint)
        await session.flush()
        await session.refresh(endpoint)
        return Reply(as_json(endpoint, secret=True), 201)


async def _list_webhooks(call: Call) -> Reply:
    async with call.services.sessions() as session:
        await require_staff(session, call.me.user_id)
        rows = await session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.created_at))
        return Reply({"items": [as_json(e) for e in rows]})


async def _delete_webhook(call: Call) -> Reply:
    async with call.services.sessions() as session, session.begin():
        await require_staff(session, call.me.user_id)
        gone = await session.scalar(delete(WebhookEndpoint).where(WebhookEndpoint.id == call.params["endpoint_id"])
                                    .returning(WebhookEndpoint.id))
    if gone is None:
        raise NotFound("no such webhook endpoint")
    return Reply(None, 204)


async def _rotate_webhook_secret(call: Call) -> Reply:
    async with call.services.sessions() as session, session.begin():
        await require_staff(session, call.me.user_id)
        endpoint = await session.get(WebhookEndpoint, call.params["endpoint_id"], with_for_update=True)
        if endpoint is None:
            raise NotFound("no such webhook endpoint")
        until = datetime.now(UTC) + ROTATION_OVERLAP
        endpoint.previous_secret, endpoint.previous_expires_at = endpoint.secret, until
        endpoint.secret = signing.new_secret()
        return Reply({**as_json(endpoint, secret=True), "previous_expires_at": until.isoformat()})


def _attempt(a: WebhookAttempt) -> dict[str, Any]:
    return {"id": a.id, "event_id": a.event_id, "type": a.event_type, "attempt": a.attempt, "at": a.at.isoformat(),
            "status_code": a.status_code, "latency_ms": a.latency_ms, "error": a.error}


async def _webhook_deliveries(call: Call) -> Reply:
    q, limit = call.query, call.query.get("limit", 50)
    endpoint_id: uuid.UUID = call.params["endpoint_id"]
    async with call.services.sessions() as session:
        await require_staff(session, call.me.user_id)
        if await session.get(WebhookEndpoint, endpoint_id) is None:
            raise NotFound("no such webhook endpoint")
        stmt = select(WebhookAttempt).where(WebhookAttempt.endpoint_id == endpoint_id)
        if "before" in q:
            stmt = stmt.where(WebhookAttempt.id < q["before"])
        if "event_id" in q:
            stmt = stmt.where(WebhookAttempt.event_id == q["event_id"])
        rows = list(await session.scalars(stmt.order_by(WebhookAttempt.id.desc()).limit(limit)))
    return Reply({"items": [_attempt(a) for a in rows], "next_cursor": rows[-1].id if len(rows) == limit else None})


def routes() -> list[Route]:
    params = Schema({"endpoint_id": Field("uuid", description="the endpoint's id")})
    return [
        Route("POST", "/admin/webhooks", _create_webhook,
              "Register a webhook endpoint; the answer holds its signing secret (staff)", "webhooks",
              body=Schema({
                  "url": Field("string", min_len=8, max_len=2000, description="http:// or https:// URL"),
                  "events": Field("array", required=False, max_len=32, items=Field("string", choices=EVENT_TYPES),
                                  description="event types to deliver; empty or absent: all"),
                  "description": Field("string", required=False, max_len=200),
              }), ok=201),
        Route("GET", "/admin/webhooks", _list_webhooks, "Registered webhook endpoints, without secrets (staff)",
              "webhooks"),
        Route("DELETE", "/admin/webhooks/{endpoint_id}", _delete_webhook,
              "Remove an endpoint (its pending deliveries and log go with it) (staff)", "webhooks",
              params=params, ok=204),
        Route("POST", "/admin/webhooks/{endpoint_id}/rotate", _rotate_webhook_secret,
              "A new signing secret; the previous one still signs for 24 h (staff)", "webhooks", params=params),
        Route("GET", "/admin/webhooks/{endpoint_id}/deliveries", _webhook_deliveries,
              "The endpoint's delivery log, newest attempt first (staff)", "webhooks", params=params,
              query=Schema({
                  "before": Field("integer", required=False, minimum=1, maximum=2**63 - 1,
                                  description="cursor: next_cursor"),
                  "limit": Field("integer", required=False, minimum=1, maximum=100),
                  "event_id": Field("string", required=False, min_len=1, max_len=100),
              })),
    ]
