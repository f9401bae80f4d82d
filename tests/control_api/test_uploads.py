"""Uploads through HTTP on the real embedded Postgres/Redis, served the way processes serve them (the
root application of :func:`switchboard.runtime.base_app`, so every response gets its security
headers): images decoded within bounds and re-encoded, bombs and polyglots refused or neutralised,
idempotency over the raw body, private files on disk, blocks hiding old attachments, and a client
that leaves mid-upload logged as what it is."""

from __future__ import annotations

import asyncio
import io
import logging
import stat
import struct
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from argon2 import PasswordHasher
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image
from prometheus_client import CollectorRegistry

from control_api.app import ApiDeps, create_api_app
from switchboard.health import Readiness
from switchboard.runtime import base_app
from switchboard.settings import ApiSettings
from tests.control_api.conftest import Api, Outbox, User

PNG = {"Content-Type": "image/png"}


@pytest.fixture
def media_dir(tmp_path: Path) -> Path:
    return tmp_path / "media"


@pytest.fixture
async def served(aiohttp_client: Callable[..., Awaitable[TestClient]], database_url: str, redis: Any,
                 redis_url: str, media_dir: Path) -> Api:
    """The API mounted on a process's root application (security headers, request ids, metrics)."""
    outbox, key = Outbox(), Ed25519PrivateKey.generate()
    deps = ApiDeps(ApiSettings(), database_url, redis_url, Readiness(), token_key=key, media_dir=media_dir,
                   hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1), mailer=outbox,
                   consume_events=False)
    root = base_app(CollectorRegistry())
    root.add_subapp("/api", create_api_app(deps))
    return Api(await aiohttp_client(root), outbox, key, root)


def image(fmt: str = "PNG", size: tuple[int, int] = (4, 3), **save: Any) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 60)).save(out, format=fmt, **save)
    return out.getvalue()


def png_chunks(width: int, height: int, rows: bytes | None, bit_depth: int = 1) -> bytes:
    """A grayscale PNG with the given header and (zlib-compressed) rows; None: no pixel data at all."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0))
    idat = chunk(b"IDAT", zlib.compress(rows, 9)) if rows is not None else b""
    return b"\x89PNG\r\n\x1a\n" + ihdr + idat + chunk(b"IEND", b"")


def zero_png(width: int, height: int) -> bytes:
    """A real 1-bit PNG of zeros: a few KiB on the wire, ``width * height`` pixels once decoded."""
    row = b"\x00" * (1 + (width + 7) // 8)
    return png_chunks(width, height, row * height)


async def test_a_polyglot_is_stored_as_a_plain_image_and_served_with_nosniff(served: Api) -> None:
    user = await served.user("poly")
    polyglot = image() + b"<html><script>alert(document.cookie)</script></html>"
    status, body = await served.call("PUT", "/me/photo", user, data=polyglot, headers=PNG)
    assert status == 200 and body["content_type"] == "image/png", body
    resp = await served.client.get(body["photo_url"])
    data = await resp.read()
    assert resp.status == 200 and resp.content_type == "image/png"
    assert b"<script" not in data and b"<html" not in data
    assert Image.open(io.BytesIO(data)).getpixel((1, 1)) == (200, 30, 60)
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "sandbox" in csp and "frame-ancestors 'none'" in csp
    assert resp.headers["X-Frame-Options"] == "DENY" and resp.headers["Referrer-Policy"] == "no-referrer"


async def test_decompression_bombs_are_refused_and_nothing_is_stored(served: Api, media_dir: Path) -> None:
    user = await served.user("bomber")
    bombs = {
        "header only, 30000x30000 (Pillow's own guard)": png_chunks(30_000, 30_000, None),
        "10000x10000 of zeros in a few KiB": zero_png(10_000, 10_000),
        "6000x5000: over our pixel bound, under Pillow's": zero_png(6_000, 5_000),
        "9000x1: over our side bound": zero_png(9_000, 1),
    }
    for what, bomb in bombs.items():
        assert len(bomb) < 200_000, what
        for path in ("/me/photo", "/media"):
            status, body = await served.call("PUT" if path == "/me/photo" else "POST", path, user, data=bomb,
                                             headers=PNG)
            assert status == 413 and body["status"] == 413, (what, path, body)
    assert set(_modes(media_dir)) <= {"."}


async def test_corrupt_images_are_415(served: Api) -> None:
    user = await served.user("corrupt")
    whole = image()
    for data in (whole[: len(whole) // 2], b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, b"\xff\xd8\xff" + b"junk" * 10,
                 png_chunks(4, 4, b"\x00")):
        status, body = await served.call("POST", "/media", user, data=data, headers=PNG)
        assert status == 415 and body["status"] == 415, (data[:20], body)


async def test_metadata_is_dropped_and_animations_kept(served: Api) -> None:
    user = await served.user("meta")
    exif = Image.Exif()
    exif[0x010F] = "SpyCam-Maker"  # Make
    exif[0x0112] = 6  # Orientation: rotate 90 degrees on display
    jpeg = image("JPEG", (40, 20), exif=exif.tobytes())
    status, media = await served.call("POST", "/media", user, data=jpeg, headers={"Content-Type": "image/jpeg"})
    assert status == 201, media
    data = await (await served.client.get(media["url"], headers=user.auth)).read()
    stored = Image.open(io.BytesIO(data))
    assert b"SpyCam" not in data and not stored.getexif()
    assert stored.size == (20, 40)  # the orientation was applied before EXIF went
    frames = [Image.new("RGB", (8, 8), (80 * i, 200 - 60 * i, 10)) for i in range(3)]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    status, media = await served.call("POST", "/media", user, data=out.getvalue() + b"trailing",
                                      headers={"Content-Type": "image/gif"})
    assert status == 201, media
    data = await (await served.client.get(media["url"], headers=user.auth)).read()
    assert Image.open(io.BytesIO(data)).n_frames == 3 and not data.endswith(b"trailing")


async def test_a_phone_photo_in_mpo_is_stored_as_its_first_jpeg(served: Api) -> None:
    user = await served.user("phone")
    out = io.BytesIO()
    first, depth_map = Image.new("RGB", (30, 20), (255, 0, 0)), Image.new("RGB", (30, 20), (0, 0, 255))
    first.save(out, format="MPO", save_all=True, append_images=[depth_map])
    status, media = await served.call("POST", "/media", user, data=out.getvalue(),
                                      headers={"Content-Type": "image/jpeg"})
    assert status == 201 and media["content_type"] == "image/jpeg", media
    data = await (await served.client.get(media["url"], headers=user.auth)).read()
    stored = Image.open(io.BytesIO(data))
    assert stored.format == "JPEG" and getattr(stored, "n_frames", 1) == 1
    red, _, blue = stored.getpixel((5, 5))
    assert red > 200 and blue < 50


async def test_idempotency_key_covers_the_uploaded_bytes(served: Api) -> None:
    user = await served.user("idemup")
    key = {"Idempotency-Key": "upload-1", **PNG}
    first = await served.call("POST", "/media", user, data=image(size=(4, 3)), headers=key)
    again = await served.call("POST", "/media", user, data=image(size=(4, 3)), headers=key)
    assert first[0] == 201 and again == first
    status, body = await served.call("POST", "/media", user, data=image(size=(5, 5)), headers=key)
    assert status == 422 and body["errors"][0]["field"] == "Idempotency-Key", body
    # JSON bodies too: the same key with other bytes is another request.
    other = await served.user("idemjson")
    conv = (await served.call("POST", "/conversations", user, json={"members": [other.id]}))[1]
    path = f"/conversations/{conv['id']}/messages"
    headers = {"Idempotency-Key": "m-1", "Content-Type": "application/json"}
    assert (await served.call("POST", path, user, data=b'{"text": "a"}', headers=headers))[0] == 201
    assert (await served.call("POST", path, user, data=b'{"text": "b"}', headers=headers))[0] == 422


def _modes(directory: Path) -> dict[str, int]:
    """Permission bits of the directory (under ".") and of each file in it; empty when it is missing."""
    if not directory.exists():
        return {}
    return {".": stat.S_IMODE(directory.stat().st_mode),
            **{f.name: stat.S_IMODE(f.stat().st_mode) for f in directory.iterdir()}}


async def test_media_files_are_private_on_disk(served: Api, media_dir: Path) -> None:
    await asyncio.to_thread(media_dir.mkdir, mode=0o755)  # as an older release left it
    user = await served.user("disk")
    status, body = await served.call("PUT", "/me/photo", user, data=image(), headers=PNG)
    assert status == 200, body
    assert (await served.call("POST", "/media", user, data=image(), headers=PNG))[0] == 201
    modes = _modes(media_dir)
    assert modes.pop(".") == 0o700
    assert len(modes) == 3 and set(modes.values()) == {0o600}, modes  # photo, media and its blurred preview


async def _download(api: Api, user: User, media_id: str) -> int:
    resp = await api.client.get(f"/api/media/{media_id}", headers=user.auth)
    await resp.read()
    return resp.status


async def _shared_attachment(api: Api, a: User, b: User) -> str:
    conv = (await api.call("POST", "/conversations", a, json={"members": [b.id]}))[1]
    media = (await api.call("POST", "/media", a, data=image(), headers=PNG))[1]
    status, _ = await api.call("POST", f"/conversations/{conv['id']}/messages", a,
                               json={"attachments": [{"media_id": media["id"]}]})
    assert status == 201
    assert await _download(api, b, media["id"]) == 200
    return str(media["id"])


@pytest.mark.parametrize("blocker", ["sender", "recipient"])
async def test_a_block_hides_attachments_sent_before_it(served: Api, blocker: str) -> None:
    a, b = await served.user(f"snd-{blocker}"), await served.user(f"rcv-{blocker}")
    media_id = await _shared_attachment(served, a, b)
    who, whom = (a, b) if blocker == "sender" else (b, a)
    assert (await served.call("POST", f"/users/{whom.id}/block", who))[0] in (200, 201, 204)
    status, body = await served.call("GET", f"/media/{media_id}", b)
    assert status == 404 and body["status"] == 404
    assert await _download(served, a, media_id) == 200  # the owner keeps their own file
    assert (await served.call("DELETE", f"/users/{whom.id}/block", who))[0] in (200, 204)
    assert await _download(served, b, media_id) == 200


async def test_a_client_leaving_mid_upload_is_logged_at_info(served: Api, caplog: pytest.LogCaptureFixture) -> None:
    user = await served.user("leaver")
    caplog.set_level(logging.DEBUG)
    _, writer = await asyncio.open_connection(served.client.host, served.client.port)
    writer.write(b"POST /api/media HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\nContent-Length: 1000000\r\n"
                 + f"Authorization: Bearer {user.access}\r\n\r\n".encode() + image()[:100])
    await writer.drain()
    writer.close()
    for _ in range(200):  # until the server has noticed (bounded; no timing asserted)
        if any("client closed the connection" in r.getMessage() for r in caplog.records):
            break
        await asyncio.sleep(0.05)
    gone = [r for r in caplog.records if "client closed the connection" in r.getMessage()]
    assert gone and gone[0].levelno == logging.INFO
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]


async def test_every_api_answer_has_the_security_headers(served: Api) -> None:
    for path in ("/api/", "/api/nope", "/api/me", "/api/photos/photo-" + "0" * 32):
        resp = await served.client.get(path)
        assert resp.headers["X-Content-Type-Options"] == "nosniff", path
        assert resp.headers["X-Frame-Options"] == "DENY", path
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"], path
        assert resp.headers["Referrer-Policy"] == "no-referrer", path

