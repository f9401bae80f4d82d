"""``/api/openapi.json``: the OpenAPI 3.1 document, generated from the same :class:`Route` list that is
served, so every route is described and every described input is the one checked."""

from __future__ import annotations

import re
from typing import Any

from control_api.http import Route
from control_api.responses import COMPONENTS, RESPONSES

_PROBLEM = {"$ref": "#/components/schemas/Problem"}
_ERRORS = {
    "400": "Unreadable request (not JSON, nested too deeply, or a field that is not Unicode text: named in errors)",
    "401": "Not authenticated",
    "403": "Forbidden",
    "404": "Not found",
    "409": "Conflict",
    "413": "Too large (a JSON body over 64 KiB by default, an upload or image over its limits)",
    "415": "Unsupported media type",
    "422": "Invalid fields (each named in errors)",
    "429": "Rate limited (see Retry-After)",
}

PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "detail": {"type": "string"}},
                "required": ["field", "detail"],
            },
        },
    },
    "required": ["type", "title", "status"],
}


def _success(route: Route) -> dict[str, Any]:
    if route.ok == 204:
        return {"description": "Done (no content)"}
    if route.produces == "application/json":
        schema = RESPONSES.get((route.method, openapi_path(route.path)), {})
        return {"description": "OK", "content": {"application/json": {"schema": schema}}}
    return {"description": "OK", "content": {route.produces: {"schema": {"type": "string", "format": "binary"}}}}


def operation(route: Route) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": route.operation_id, "summary": route.summary, "tags": [route.tag]}
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": spec.openapi()}
        for name, spec in route.params.fields.items()
    ]
    if route.query is not None:
        parameters += route.query.query_parameters()
    if route.idempotent:
        parameters.append({
            "name": "Idempotency-Key", "in": "header", "required": False,
            "schema": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[ -~]+$"},
            "description": "The same key with the same request (method, path, and the bytes of the body) returns "
                           "the same response for 24 hours; with another request it is a 422.",
        })
    if parameters:
        op["parameters"] = parameters
    if route.body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": route.body.openapi()}}}
    elif route.upload:
        op["requestBody"] = {
            "required": True,
            "content": {kind: {"schema": {"type": "string", "format": "binary"}} for kind in route.upload},
        }
    responses: dict[str, Any] = {str(route.ok): _success(route)}
    if route.repeat is not None:
        responses[str(route.repeat)] = {**_success(route), "description": "A repeat: what the first request made"}
    for status, text in _ERRORS.items():
        responses[status] = {"description": text, "content": {"application/problem+json": {"schema": _PROBLEM}}}
    op["responses"] = responses
    if route.auth:
        op["security"] = [{"bearer": []}]
    else:
        op["security"] = []
    return op


def openapi_path(path: str) -> str:
    """aiohttp's ``{name:regex}`` placeholders as OpenAPI's ``{name}``."""
    return re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", path)


def document(routes: list[Route]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(openapi_path(route.path), {})[route.method.lower()] = operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Switchboard control API",
            "version": "1",
            "description": "Accounts, profiles, social graph, chat, notifications and room tokens. "
                           "Errors are RFC 9457 problem+json.",
        },
        "servers": [{"url": "/api"}],
        "paths": paths,
        "components": {
            "schemas": {"Problem": PROBLEM_SCHEMA, **COMPONENTS},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }
