"""Bad input through the real HTTP door never reaches a traceback: every text field of every route
(found from the served route table, so a new route is covered the day it lands), the query string,
path parameters, headers, JSON nesting and body size. Always a 4xx problem, never a 500."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from control_api.app import all_routes
from control_api.http import Route
from control_api.schema import Field, Schema
from tests.control_api.conftest import Api, User, api_settings

TEXT_KINDS = {"string", "email", "uuid", "date"}
LONE = st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff", "\ud83d"])
"""Lone surrogates: what JSON's \\ud800 escape can carry and no UTF-8 column can store."""
ANY_TEXT = st.text(st.characters(codec=None) | st.characters(categories=["Cs"]), max_size=40)
"""Arbitrary unicode, surrogates included."""
WITH_LONE = st.builds(lambda a, s, b: a + s + b, st.text(max_size=8), LONE, st.text(max_size=8))
FUZZ = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _text_fields(schema: Schema, prefix: str = "") -> Iterator[tuple[str, list[str]]]:
    """(field name as errors name it, path into the body) for every text field, nested ones included."""
    for name, spec in schema.fields.items():
        yield from _field_paths(spec, name, [name])


def _field_paths(spec: Field, label: str, path: list[str]) -> Iterator[tuple[str, list[str]]]:
    if spec.kind in TEXT_KINDS:
        yield label, path
    elif spec.kind == "array" and spec.items is not None:
        yield from _field_paths(spec.items, label, [*path, "[]"])
    elif spec.kind == "object" and spec.shape is not None:
        for name, inner in spec.shape.fields.items():
            yield from _field_paths(inner, label, [*path, name])


def _body(path: list[str], value: str) -> Any:
    """A body holding ``value`` at ``path`` and nothing else."""
    head, rest = path[0], path[1:]
    if head == "[]":
        return [_body(rest, value) if rest else value]
    return {head: _body(rest, value) if rest else value}


def _named(path: list[str]) -> str:
    """The name the problem gives the value at ``path`` (as :func:`_body` builds it): ``attachments[0].media_id``."""
    return path[0] + "".join("[0]" if step == "[]" else f".{step}" for step in path[1:])


def _path_value(spec: Field) -> str:
    """A value the path parameter accepts (the route's own declaration decides)."""
    for candidate in (str(uuid.uuid4()), "room-1", "photo-" + "0" * 32, "1", "small", uuid.uuid4().hex):
        try:
            spec.check(candidate, from_query=True)
            return candidate
        except ValueError:
            continue
    raise AssertionError(f"add a path value for {spec}")


def _url(route: Route, **given: str) -> str:
    url = route.path
    for name, spec in route.params.fields.items():
        url = url.replace("{" + name + "}", given.get(name, _path_value(spec)))
    return "/api" + url


BODY_FIELDS = [(route, label, path) for route in all_routes() if route.body is not None
               for label, path in _text_fields(route.body)]
QUERY_FIELDS = [(route, name) for route in all_routes() if route.query is not None for name in route.query.fields]
PATH_FIELDS = [(route, name) for route in all_routes() for name in route.params.fields]


@pytest.fixture
async def roomy(make_api: Any) -> Api:
    """The API with rate limits out of the way: every fuzzed request reaches validation."""
    return await make_api(api_settings(rate_user_per_min=1_000_000, rate_ip_per_min=1_000_000))


def test_every_route_with_text_is_covered() -> None:
    assert len(BODY_FIELDS) >= 25 and QUERY_FIELDS and PATH_FIELDS
    assert any(label == "bio" for _, label, _ in BODY_FIELDS)


async def _send(api: Api, user: User, route: Route, body: Any) -> tuple[int, Any, str]:
    """The request as bytes, JSON escapes kept (``\\ud800`` stays an escape, as a client sends it)."""
    raw = json.dumps(body)  # ensure_ascii: a surrogate goes out as the six characters \ud800
    headers = {"Content-Type": "application/json", **(user.auth if route.auth else {})}
    resp = await api.client.request(route.method, _url(route), data=raw.encode(), headers=headers)
    text = await resp.text()
    return resp.status, json.loads(text) if text else None, resp.content_type


def _is_problem(status: int, body: Any, content_type: str) -> None:
    assert status < 500, body
    if status >= 400:
        assert content_type == "application/problem+json" and body["status"] == status, body


async def test_a_lone_surrogate_in_any_body_text_field_is_a_400_naming_it(api: Api) -> None:
    user = await api.user("surrogates")
    for route, label, path in BODY_FIELDS:
        status, body, content_type = await _send(api, user, route, _body(path, "a\ud800b"))
        assert status == 400, (route.method, route.path, label, body)
        _is_problem(status, body, content_type)
        assert body["title"] == "Unreadable fields"
        named = {e["field"]: e["detail"] for e in body["errors"]}
        assert "Unicode" in named[_named(path)], (route.path, label, body)
        json.dumps(body, ensure_ascii=False).encode()  # the answer itself is valid Unicode throughout


async def test_a_lone_surrogate_in_a_field_name_is_a_400(api: Api) -> None:
    status, body = await api.call("POST", "/auth/register", data=b'{"\\udfff": 1}',
                                  headers={"Content-Type": "application/json"})
    assert status == 400 and "\\udfff" in {e["field"] for e in body["errors"]}, body


@FUZZ
@given(field=st.sampled_from(BODY_FIELDS), value=ANY_TEXT | WITH_LONE)
async def test_any_text_in_any_body_field_is_never_a_500(roomy: Api, field: tuple[Route, str, list[str]],
                                                        value: str) -> None:
    route, label, path = field
    user = await _fuzz_user(roomy)
    status, body, content_type = await _send(roomy, user, route, _body(path, value))
    _is_problem(status, body, content_type)
    if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        assert status in (400, 429), body  # 429: a per-route limit may refuse before the body is read
        if status == 400:
            assert any(e["field"] == _named(path) for e in body["errors"]), (label, body)


@FUZZ
@given(field=st.sampled_from(QUERY_FIELDS + PATH_FIELDS), value=ANY_TEXT | WITH_LONE)
async def test_any_text_in_query_or_path_is_never_a_500(roomy: Api, field: tuple[Route, str], value: str) -> None:
    route, name = field
    user = await _fuzz_user(roomy)
    # What a client can put on the wire: the text's UTF-8 (surrogates as their 3-byte forms), percent-encoded.
    encoded = quote(value.encode("utf-8", "surrogatepass"), safe="")
    if name in route.params.fields:
        url = _url(route, **{name: encoded or "x"})
    else:
        url = _url(route) + f"?{name}={encoded}"
    resp = await roomy.client.request(route.method, URL(url, encoded=True), headers=user.auth)
    text = await resp.text()
    _is_problem(resp.status, json.loads(text) if text and resp.content_type.endswith("json") else text,
                resp.content_type)


async def _fuzz_user(api: Api) -> User:
    """One signed-in user per test (hypothesis runs every example in the same test)."""
    users = api.__dict__.setdefault("_fuzz_users", [])
    if not users:
        users.append(await api.user("fuzzer"))
    return users[0]


async def test_json_nested_50k_deep_is_a_clear_4xx(api: Api) -> None:
    depth = 30_000  # within the JSON size limit: the parser itself is refused the recursion
    status, body = await api.call("POST", "/auth/register", data=("[" * depth + "]" * depth).encode(),
                                  headers={"Content-Type": "application/json"})
    assert status == 400 and body["detail"] == "the body nests too deeply", body
    deep_object = "{\"a\":" * 10_000 + "1" + "}" * 10_000
    status, body = await api.call("POST", "/auth/login", data=deep_object.encode(),
                                  headers={"Content-Type": "application/json"})
    assert status == 400, body
    status, body = await api.call("POST", "/auth/register", data=("[" * 50_000 + "]" * 50_000).encode(),
                                  headers={"Content-Type": "application/json"})
    assert status == 413 and body["status"] == 413, body


async def _raw(api: Api, head: bytes, body: bytes = b"", close: bool = False) -> bytes:
    """One request on a socket of its own; the answer's bytes (up to the server closing or 64 KiB)."""
    reader, writer = await asyncio.open_connection(api.client.host, api.client.port)
    try:
        writer.write(head + body)
        await writer.drain()
        if close:
            return b""
        return await asyncio.wait_for(reader.read(65536), 30)
    finally:
        writer.close()


async def test_a_json_body_over_the_limit_is_refused_before_it_is_read(api: Api) -> None:
    # Content-Length says 8 MiB and only a few bytes follow: the answer comes without the rest.
    head = (b"POST /api/auth/register HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: 8388608\r\n\r\n")
    answer = await _raw(api, head, b'{"email": "')
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"a JSON body is at most 65536 bytes" in answer
    # Without a length (chunked), the read stops at the limit.
    chunk = b"[" + b" " * 70_000 + b"]"
    head = (b"POST /api/auth/register HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    answer = await _raw(api, head, b"%x\r\n%s\r\n0\r\n\r\n" % (len(chunk), chunk))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


async def test_raw_header_bytes_that_are_not_utf8_are_4xx(api: Api) -> None:
    user = await api.user("headers")
    for name, value in ((b"Authorization", b"Bearer \xff\xfe" + user.access.encode()),
                        (b"Idempotency-Key", b"key-\xed\xa0\x80-\xff")):
        auth = b"" if name == b"Authorization" else b"Authorization: " + user.auth["Authorization"].encode() + b"\r\n"
        head = (b"POST /api/conversations HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n" + auth
                + name + b": " + value + b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n")
        body = json.dumps({"members": [user.id], "title": "t"}).encode()
        answer = await _raw(api, head % len(body), body)
        status = int(answer.split(b" ", 2)[1])
        assert status in (401, 422), answer[:300]
        assert b"application/problem+json" in answer


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
async def test_a_body_of_another_type_is_415(api: Api, content_type: str) -> None:
    status, body = await api.call("POST", "/auth/login", data=b"email=a", headers={"Content-Type": content_type})
    assert status == 415 and body["status"] == 415
