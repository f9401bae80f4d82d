"""The OpenAPI document is true: every served route is described and every description is served;
and schemathesis, driven by the document, finds no 5xx answer."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from argon2 import PasswordHasher
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from control_api.app import ApiDeps, all_routes, create_api_app
from control_api.openapi import document, openapi_path
from switchboard.health import Readiness
from tests.control_api.conftest import Api, Outbox, api_settings


async def test_every_route_is_described(api: Api) -> None:
    status, doc = await api.call("GET", "/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    described = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    served = set()
    for route in api.app._subapps[0].router.routes():  # type: ignore[attr-defined]
        if route.method == "HEAD":
            continue
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        served.add((openapi_path(path).removeprefix("/api"), route.method))
    pages = {("/docs", "GET"), ("/docs/{name}", "GET")}  # the reference page that shows this document
    assert served - pages == described


def test_document_is_valid_openapi() -> None:
    import jsonschema_rs  # installed with schemathesis

    doc = document(all_routes())
    for path, ops in doc["paths"].items():
        for op in ops.values():
            for param in op.get("parameters", []):
                jsonschema_rs.meta.validate(param["schema"])
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                jsonschema_rs.meta.validate(body["schema"])
            if "{" in path:
                names = {p["name"] for p in op["parameters"] if p["in"] == "path"}
                assert names == set(part[1:-1] for part in path.split("/") if part.startswith("{"))


def _post(base: str, path: str, body: dict[str, Any], token: str | None = None) -> dict[str, Any]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    req = urllib.request.Request(base + path, json.dumps(body).encode(), headers, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else {}


@pytest.fixture
def served_api(database_url: str, redis_url: str, redis_server: Any, tmp_path: Path) -> Iterator[tuple[str, Outbox]]:
    """The API on a real port, in a thread with its own loop (schemathesis runs as another process)."""
    outbox = Outbox()
    deps = ApiDeps(
        api_settings(rate_ip_per_min=1_000_000, rate_user_per_min=1_000_000, auth_ip_per_min=1_000_000,
                     auth_email_per_min=1_000_000), database_url, redis_url, Readiness(),
        token_key=Ed25519PrivateKey.generate(), media_dir=tmp_path / "media", mailer=outbox,
        hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
    )
    loop = asyncio.new_event_loop()
    root = web.Application()
    root.add_subapp("/api", create_api_app(deps))
    runner = web.AppRunner(root, access_log=None)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0).start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", outbox
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def test_schemathesis_finds_no_server_error(served_api: tuple[str, Outbox], tmp_path: Path) -> None:
    base, _outbox = served_api
    _post(base, "/api/auth/register", {"email": "fuzz@example.com", "password": "fuzz-password"})
    tokens = _post(base, "/api/auth/login", {"email": "fuzz@example.com", "password": "fuzz-password"})
    token = tokens["access_token"]
    # A second user to be followed, liked, blocked and chatted with.
    _post(base, "/api/auth/register", {"email": "peer@example.com", "password": "peer-password"})
    cli = Path(sys.executable).with_name("schemathesis")
    # One worker: hypothesis in two threads trips CPython 3.11.7 ("AST constructor recursion depth mismatch").
    done = subprocess.run(
        [str(cli), "run", f"{base}/api/openapi.json", "--url", f"{base}/api",
         "--checks", "not_a_server_error", "--max-examples", "5", "--workers", "1", "--seed", "1",
         "--phases", "examples,fuzzing", "--header", f"Authorization: Bearer {token}",
         "--request-timeout", "10", "--max-time", "30", "--no-shrink"],
        capture_output=True, text=True, timeout=150, cwd=tmp_path, env={**os.environ, "NO_COLOR": "1"},
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]


def json_answers(doc: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """``"METHOD /path" -> (tag, schema)`` of each operation's JSON success answer(s)."""
    out = {}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for status, answer in op["responses"].items():
                schema = answer.get("content", {}).get("application/json", {}).get("schema")
                if status.startswith("2") and schema is not None:
                    out[f"{method.upper()} {path}"] = (op["tags"][0], schema)
    return out


def typed_operations(doc: dict[str, Any]) -> list[str]:
    """The operations whose JSON success answer has a schema (``control_api/responses/``), by name."""
    return sorted(name for name, (_, schema) in json_answers(doc).items() if schema)


def test_every_json_operation_has_a_typed_answer() -> None:
    untyped = [name for name, (_tag, schema) in json_answers(document(all_routes())).items() if not schema]
    assert not untyped, "JSON answers documented as {} (type them in control_api/responses/):\n" + "\n".join(untyped)


def test_every_operation_has_an_id_of_its_own() -> None:
    ids = [route.operation_id for route in all_routes()]
    assert sorted({i for i in ids if ids.count(i) > 1}) == []


def test_typed_answers_conform_under_schemathesis(served_api: tuple[str, Outbox], tmp_path: Path) -> None:
    base, outbox = served_api
    _post(base, "/api/auth/register", {"email": "typed@example.com", "password": "typed-password"})
    _post(base, "/api/auth/verify", {"email": "typed@example.com", "code": outbox.last_code("typed@example.com")})
    login = {"email": "typed@example.com", "password": "typed-password"}
    token = _post(base, "/api/auth/login", login)["access_token"]
    typed = typed_operations(document(all_routes()))
    selected = "^(" + "|".join(re.escape(name) for name in typed) + ")$"
    cli = Path(sys.executable).with_name("schemathesis")
    # One worker: hypothesis in two threads trips CPython 3.11.7 ("AST constructor recursion depth mismatch").
    done = subprocess.run(
        [str(cli), "run", f"{base}/api/openapi.json", "--url", f"{base}/api",
         "--checks", "response_schema_conformance,not_a_server_error", "--include-name-regex", selected,
         "--max-examples", "10", "--workers", "1", "--seed", "1", "--phases", "examples,fuzzing",
         "--header", f"Authorization: Bearer {token}", "--request-timeout", "10", "--max-time", "40", "--no-shrink"],
        capture_output=True, text=True, timeout=150, cwd=tmp_path, env={**os.environ, "NO_COLOR": "1"},
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert typed and f"{len(typed)} selected" in done.stdout, done.stdout[-3000:]
