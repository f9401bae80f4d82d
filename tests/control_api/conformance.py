"""Every success answer the API gives in the tests is checked against the schema the OpenAPI document
gives its operation: a middleware on the test app's root validates each 2xx JSON answer and keeps what
did not conform, and the ``make_api`` fixture fails the test with the list at teardown.

Operations whose document still says ``{}`` are counted, not checked (``tests/control_api/test_openapi.py``
fails while any is left)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import jsonschema_rs  # installed with schemathesis
from aiohttp import web

from control_api.app import all_routes
from control_api.openapi import document, openapi_path


@dataclass
class Conformance:
    """The validators of each operation's success answer, and what the answers of one app broke."""

    doc: dict[str, Any] = field(default_factory=lambda: document(all_routes()))
    broken: list[str] = field(default_factory=list)
    checked: set[tuple[str, str]] = field(default_factory=set)
    _validators: dict[tuple[str, str, int], Any] = field(default_factory=dict)

    def validator(self, method: str, path: str, status: int) -> Any:
        key = (method, path, status)
        if key not in self._validators:
            op = self.doc["paths"].get(path, {}).get(method.lower())
            answer = (op or {}).get("responses", {}).get(str(status), {})
            schema = answer.get("content", {}).get("application/json", {}).get("schema")
            self._validators[key] = (jsonschema_rs.validator_for({**schema, "components": self.doc["components"]})
                                     if schema else None)
        return self._validators[key]

    def check(self, method: str, path: str, status: int, body: Any) -> None:
        validator = self.validator(method, path, status)
        if validator is None:
            return
        self.checked.add((method, path))
        errors = [f"{e.instance_path}: {e.message}" for e in validator.iter_errors(body)]
        if errors:
            self.broken.append(f"{method} {path} {status}: {errors[:5]} in {json.dumps(body)[:500]}")

    @web.middleware
    async def middleware(self, request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        response = await handler(request)
        resource = request.match_info.route.resource
        if (200 <= response.status < 300 and isinstance(response, web.Response) and resource is not None
                and response.content_type == "application/json" and isinstance(response.body, bytes)):
            path = openapi_path(resource.canonical.removeprefix("/api"))
            self.check(request.method, path, response.status, json.loads(response.body))
        return response
