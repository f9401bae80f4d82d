"""Uploads on local disk (the :class:`control_api.types.Storage` of one machine), and type sniffing."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
from pathlib import Path

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

_SIGNATURES = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def sniff_image(data: bytes) -> str | None:
    """The image type the bytes really are (JPEG, PNG, GIF, WebP), whatever the client claimed."""
    for magic, kind in _SIGNATURES:
        if data.startswith(magic):
            return kind
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


class LocalDiskStorage:
    """Files in one directory; writes go to a temporary name and are renamed into place.

    Uploads are private to the server's user: the directory is 0700 and each file 0600 (whatever
    the umask), since private attachments are among them and only the API may hand them out.
    """

    DIR_MODE = 0o700
    FILE_MODE = 0o600

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._dir_ready = False

    def _path(self, name: str) -> Path:
        if not _NAME.match(name) or name.startswith("."):
            raise ValueError(f"bad storage name {name!r}")
        return self._dir / name

    async def put(self, name: str, data: bytes) -> None:
        path = self._path(name)

        def write() -> None:
            if not self._dir_ready:
                self._dir.mkdir(mode=self.DIR_MODE, parents=True, exist_ok=True)
                self._dir.chmod(self.DIR_MODE)  # also when an older release made it 0755
                self._dir_ready = True
            # Each write its own temporary file: two puts of one name at once (a clip ingested by the
            # request and by the event loop) each replace the file whole; one shared name lost a race.
            tmp = path.with_name(f".{name}.{secrets.token_hex(8)}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, self.FILE_MODE)
            try:
                with os.fdopen(fd, "wb") as out:
                    os.fchmod(fd, self.FILE_MODE)  # the umask may have narrowed O_CREAT's mode
                    out.write(data)
                os.replace(tmp, path)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise

        await asyncio.to_thread(write)

    async def get(self, name: str) -> bytes | None:
        path = self._path(name)

        def read() -> bytes | None:
            try:
                return path.read_bytes()
            except FileNotFoundError:
                return None

        return await asyncio.to_thread(read)

    async def delete(self, name: str) -> None:
        await asyncio.to_thread(self._path(name).unlink, missing_ok=True)
