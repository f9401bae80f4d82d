"""The control API's boundaries, as Protocols: where files go and how mail leaves."""

from __future__ import annotations

from typing import Protocol


class Storage(Protocol):
    """Blob storage for photos and chat media (local disk now; object storage later)."""

    async def put(self, name: str, data: bytes) -> None:
        """Stores ``data`` under ``name`` (a flat, generated name), replacing any previous blob."""

    async def get(self, name: str) -> bytes | None:
        """The blob, or None when there is none."""

    async def delete(self, name: str) -> None:
        """Removes the blob; a missing one is not an error."""


class Mailer(Protocol):
    """Sends one rendered message (the outbox table already holds it durably)."""

    async def send(self, to: str, subject: str, body: str) -> None: ...
