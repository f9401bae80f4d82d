"""Profiles and onboarding through HTTP: pseudo uniqueness, 18+, fields, photo upload."""

from __future__ import annotations

import struct
import zlib
from datetime import date

import pytest

from tests.control_api.conftest import Api, api_settings


def tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"\x00\xff\x00\x00"
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


async def test_onboarding_sets_profile(api: Api) -> None:
    user = await api.user()
    status, body = await api.call("PATCH", "/me/profile", user, json={
        "pseudo": "Alice_1", "birth_date": "1995-02-03", "bio": "hi", "interests": ["Music", "music", "chess"],
        "country": "fr", "latitude": 48.85, "longitude": 2.35,
    })
    assert status == 200, body
    assert body["onboarding"] == {"complete": True, "missing": []}
    profile = body["profile"]
    assert profile["pseudo"] == "Alice_1" and profile["interests"] == ["chess", "music"]
    assert profile["country"] == "FR" and profile["birth_date"] == "1995-02-03"
    other = await api.user()
    status, seen = await api.call("GET", f"/users/{user.id}", other)
    assert status == 200 and seen["pseudo"] == "Alice_1" and "birth_date" not in seen and "latitude" not in seen
    assert seen["age"] >= 18


async def test_pseudo_unique_case_insensitive(api: Api) -> None:
    await api.user(pseudo="Bob")
    other = await api.user()
    status, _body = await api.call("PATCH", "/me/profile", other, json={"pseudo": "bOB"})
    assert status == 409


async def test_minors_refused_and_fields_named(api: Api) -> None:
    user = await api.user()
    today = date.today()
    young = today.replace(year=today.year - 17).isoformat()
    status, body = await api.call("PATCH", "/me/profile", user, json={"birth_date": young})
    assert status == 422 and body["errors"][0]["field"] == "birth_date"
    status, body = await api.call("PATCH", "/me/profile", user, json={"pseudo": "x", "latitude": 100,
                                                                       "country": "FRA"})
    assert status == 422 and {e["field"] for e in body["errors"]} == {"pseudo", "latitude", "country"}
    status, body = await api.call("PATCH", "/me/profile", user, json={"latitude": 10})
    assert status == 422 and body["errors"][0]["field"] == "longitude"


async def test_photo_upload_checked_and_served(api: Api) -> None:
    user = await api.user(pseudo="photog")
    png = tiny_png()
    status, body = await api.call("PUT", "/me/photo", user, data=b"not an image",
                                  headers={"Content-Type": "image/png"})
    assert status == 415
    status, body = await api.call("PUT", "/me/photo", user, data=png, headers={"Content-Type": "image/png"})
    assert status == 200 and body["content_type"] == "image/png"
    url = body["photo_url"]
    resp = await api.client.get(url)
    # Stored re-encoded from its pixels (see test_uploads.py), so not byte for byte what was sent.
    assert resp.status == 200 and (await resp.read()).startswith(b"\x89PNG") and resp.content_type == "image/png"
    status, _ = await api.call("DELETE", "/me/photo", user)
    assert status == 204
    assert (await api.client.get(url)).status == 404


@pytest.fixture
async def small_uploads(make_api) -> Api:  # type: ignore[no-untyped-def]
    return await make_api(api_settings(photo_max_bytes=100))


async def test_photo_size_limit(small_uploads: Api) -> None:
    api = small_uploads
    user = await api.user()
    big = tiny_png() + b"\x00" * 200
    status, body = await api.call("PUT", "/me/photo", user, data=big, headers={"Content-Type": "image/png"})
    assert status == 413 and body["status"] == 413
