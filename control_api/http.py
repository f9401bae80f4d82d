"""The API's HTTP edge: declared routes, the one wrapper every handler runs in, problem+json errors.

A :class:`Route` declares its path parameters, query, body, auth and idempotency; the wrapper checks
them in that order (auth, rate limits, input, Idempotency-Key), so a handler receives only checked
values in a :class:`Call` and returns a :class:`Reply`. Errors become RFC 9457 problems only here.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import http_exceptions, web

from control_api.admission import Vouch
from control_api.errors import (
    ApiError,
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PaymentRequired,
    RateLimited,
    TooLarge,
    Unauthenticated,
    Unavailable,
    UnreadableFields,
    UnsupportedMedia,
    ValidationFailed,
)
from control_api.schema import Schema, unreadable
from control_api.services import SERVICES, Caller, Services

log = logging.getLogger("switchboard.api")
PROBLEM_TYPE = "application/problem+json"
_ENCODER = json.JSONEncoder(default=str)
"""Answers' JSON (``json.dumps(v, default=str)`` builds an encoder per call; this one is built once)."""

_STATUS: dict[type[ApiError], tuple[int, str]] = {
    UnreadableFields: (400, "Unreadable fields"),
    ValidationFailed: (422, "Invalid fields"),
    BadRequest: (400, "Bad request"),
    Unauthenticated: (401, "Not authenticated"),
    Forbidden: (403, "Forbidden"),
    NotFound: (404, "Not found"),
    Conflict: (409, "Conflict"),
    TooLarge: (413, "Too large"),
    UnsupportedMedia: (415, "Unsupported media type"),
    RateLimited: (429, "Too many requests"),
    PaymentRequired: (402, "Payment required"),
    Unavailable: (503, "Service unavailable"),
}


@dataclass(frozen=True)
class Reply:
    """A handler's JSON answer (kept whole so an Idempotency-Key can replay it)."""

    body: Any
    """JSON-serialisable value; None means no content."""
    status: int = 200
    """HTTP status."""


@dataclass(frozen=True)
class Call:
    """What a handler receives: the checked caller and inputs."""

    request: web.Request
    """The raw request (headers, remote address, raw body for uploads)."""
    services: Services
    """The app's shared resources."""
    caller: Caller | None
    """The authenticated account, or None on public routes."""
    params: dict[str, Any]
    """Checked path parameters."""
    query: dict[str, Any]
    """Checked query parameters."""
    body: dict[str, Any]
    """Checked JSON body (empty when the route has none)."""
    raw: bytes = b""
    """The raw body, read within its limit: the upload itself on upload routes (the request's
    stream is consumed; never ``await request.read()`` again)."""

    @property
    def me(self) -> Caller:
        if self.caller is None:  # pragma: no cover - the wrapper refuses this first
            raise Unauthenticated("authentication required")
        return self.caller


Handler = Callable[[Call], Awaitable[Reply | web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    """One operation, as served and as described in ``/api/openapi.json``."""

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    auth: bool = True
    """Needs ``Authorization: Bearer <access token>``."""
    params: Schema = field(default_factory=Schema)
    query: Schema | None = None
    body: Schema | None = None
    upload: tuple[str, ...] = ()
    """Raw-body upload content types accepted (photo, media)."""
    ok: int = 200
    """Success status."""
    repeat: int | None = None
    """The status of a repeat that answers what the first request made, with the same shape (a second
    purchase of a ticket, a report already open, a 1:1 conversation that exists: 200); None: a repeat
    answers like the first."""
    idempotent: bool = False
    """Honours ``Idempotency-Key`` (creating POSTs)."""
    produces: str = "application/json"
    """Success content type."""
    priority: bool = False
    """Admitted in slots of its own, ahead of the admission queue (control_api/admission.py): for
    callers whose retry after a 503 comes late and costs much (Stripe's webhook)."""
    vouch: Vouch | None = None
    """What a request of a ``priority`` route must show to take a priority slot (Stripe's webhook: a
    valid signature), so that a forged flood passes the ordinary gate; None: any request."""

    @property
    def operation_id(self) -> str:
        return self.handler.__name__.lstrip("_")


def problem(status: int, title: str, detail: str, instance: str, **extra: Any) -> web.Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, "instance": instance, **extra}
    return web.Response(status=status, text=json.dumps(body), content_type=PROBLEM_TYPE)


class ClientGone(Exception):
    """The client closed its connection while its request body was being read."""


def _text(value: str) -> str:
    """``value`` with any lone surrogate spelled out (``\\ud800``): a problem names bad fields without
    echoing what a client's JSON parser might refuse."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8") if unreadable(value) else value


def error_response(exc: ApiError, instance: str) -> web.Response:
    status, title = next((v for k, v in _STATUS.items() if isinstance(exc, k)), (400, "Bad request"))
    extra: dict[str, Any] = {}
    headers: dict[str, str] = {}
    if isinstance(exc, ValidationFailed):
        extra["errors"] = [{"field": _text(k), "detail": _text(v)} for k, v in sorted(exc.fields.items())]
    if isinstance(exc, (RateLimited, Unavailable)):
        headers["Retry-After"] = str(exc.retry_after_s)
    resp = problem(status, title, _text(exc.detail), instance, **extra)
    resp.headers.update(headers)
    return resp


@web.middleware
async def problem_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every error under /api leaves as problem+json, including aiohttp's own 404/405/413."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc, request.path)
    except ClientGone:
        # Nobody is left to read an answer: an ordinary event, not a server fault.
        log.info("client closed the connection during %s %s", request.method, request.path)
        return problem(400, "Client went away", "the connection closed before the body was read", request.path)
    except asyncio.CancelledError:
        # aiohttp cancels a handler whose client went away while it awaited (Redis, Postgres) before
        # reading the body: the same ordinary event, said the same way; the cancellation goes on.
        if request.transport is None or request.transport.is_closing():
            log.info("client closed the connection during %s %s", request.method, request.path)
        raise
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        resp = problem(exc.status, exc.reason, exc.text or exc.reason, request.path)
        for name in ("Allow", "Retry-After"):
            if name in exc.headers:
                resp.headers[name] = exc.headers[name]
        return resp
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem(500, "Internal error", "the server failed; the request id is in X-Request-Id", request.path)


async def _caller(request: web.Request, services: Services) -> Caller:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    # A token is ASCII (base64url): anything else (bytes the header parser kept as surrogates) is no token.
    if scheme.lower() != "bearer" or not token.strip() or not token.isascii():
        raise Unauthenticated("send Authorization: Bearer <access token>")
    # One Redis round trip (epoch, ban mark, premium mark): its own span when tracing is on.
    with services.tracing.span("redis standing", attributes={"db.system.name": "redis"}):
        return await services.access.authenticate(token.strip())


async def read_body(request: web.Request, limit: int, noun: str) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``limit`` bytes: by its
    Content-Length before reading, else while reading (never buffered whole first)."""
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(f"{noun} is at most {limit} bytes")
    body = bytearray()
    try:
        while chunk := await request.content.readany():
            body += chunk
            if len(body) > limit:
                raise TooLarge(f"{noun} is at most {limit} bytes")
    except ConnectionError as exc:
        raise ClientGone() from exc
    except http_exceptions.HttpProcessingError:
        raise BadRequest("the body could not be read (bad chunked encoding or compression)") from None
    return bytes(body)


def _json_body(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except RecursionError:
        raise BadRequest("the body nests too deeply") from None
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body is not valid JSON") from None


async def _read_input(route: Route, request: web.Request, services: Services) -> tuple[bytes, Any]:
    """The raw body and, for JSON routes, its parsed value; each within its own limit."""
    settings = services.settings
    if route.upload:
        if request.content_type not in route.upload:
            raise UnsupportedMedia("send one of " + ", ".join(route.upload) + " with its Content-Type")
        return await read_body(request, settings.photo_max_bytes, "an upload"), None
    if route.body is None or not request.body_exists:
        return b"", {}
    if request.content_type != "application/json":
        raise UnsupportedMedia("send the body as application/json")
    raw = await read_body(request, settings.json_max_bytes, "a JSON body")
    return raw, _json_body(raw)


def _client_ip(request: web.Request) -> str:
    return request.remote or "unknown"


def wrap(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The aiohttp handler for ``route``."""

    async def handle(request: web.Request) -> web.StreamResponse:
        services = request.config_dict[SERVICES]
        caller = await _caller(request, services) if route.auth else None
        await services.limits.check(_client_ip(request), caller)
        params = route.params.parse(dict(request.match_info), from_query=True)
        query = route.query.parse(dict(request.query), from_query=True) if route.query else {}
        raw, data = await _read_input(route, request, services)
        body = route.body.parse(data) if route.body is not None else {}
        call = Call(request, services, caller, params, query, body, raw)
        key = request.headers.get("Idempotency-Key") if route.idempotent else None
        if key is None:
            return _respond(await route.handler(call))
        scope = str(caller.user_id) if caller else _client_ip(request)
        # The raw body's digest, JSON or upload: the same key with other bytes is another request (422).
        fingerprint = json.dumps([route.method, request.path_qs, hashlib.sha256(raw).hexdigest()])
        saved = await services.idempotency.begin(scope, key, fingerprint)
        if saved is not None:
            resp = _respond(Reply(saved.body, saved.status))
            resp.headers["Idempotent-Replayed"] = "true"
            return resp
        try:
            result = await route.handler(call)
        except ApiError as exc:
            # A refusal is not a response worth replaying: free the key for a corrected retry.
            await services.idempotency.abandon(scope, key)
            raise exc from None
        except BaseException:
            await services.idempotency.abandon(scope, key)
            raise
        if isinstance(result, Reply):
            await services.idempotency.finish(scope, key, fingerprint, result.status, result.body)
        return _respond(result)

    handle.__name__ = route.operation_id
    return handle


def _respond(result: Reply | web.StreamResponse) -> web.StreamResponse:
    if isinstance(result, web.StreamResponse):
        return result
    if result.body is None:
        return web.Response(status=result.status)
    return web.Response(text=_ENCODER.encode(result.body), status=result.status, content_type="application/json")


def install(app: web.Application, routes: list[Route]) -> dict[web.AbstractRoute, Vouch | None]:
    """Adds ``routes`` to ``app``; returns aiohttp's routes of those marked ``priority``, with their vouch."""
    priority: dict[web.AbstractRoute, Vouch | None] = {}
    for route in routes:
        added = app.router.add_route(route.method, route.path, wrap(route))
        if route.priority:
            priority[added] = route.vouch
    return priority
