"""The SDK's small error vocabulary: what a caller catches."""

from __future__ import annotations

from typing import Any

import aiohttp


class SwitchboardError(Exception):
    """Base of every error the SDK raises."""


class ClosedError(SwitchboardError):
    """The object was closed (by its owner, or because its connection ended for good)."""


class ApiError(SwitchboardError):
    """The control API answered with an HTTP error (a problem+json body)."""

    def __init__(self, status: int, detail: str, body: Any = None) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        """The HTTP status code."""
        self.detail = detail
        """The problem's ``detail`` (or ``title``), for a person."""
        self.body = body
        """The decoded body, as sent."""


class NodeError(SwitchboardError):
    """The node answered a request with an ``error`` frame (docs/protocol.md lists the codes)."""

    def __init__(self, code: str, message: str, frame: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        """The wire code: ``forbidden``, ``not_found``, ``busy``, ..."""
        self.message = message
        self.frame = frame or {}


class Disconnected(NodeError):
    """The socket dropped while a request was waiting: its outcome is unknown."""

    def __init__(self, message: str = "the socket dropped before the reply") -> None:
        super().__init__("disconnected", message)


def described(exc: BaseException) -> str:
    """``exc`` for a log line, without what a URL carries: aiohttp's response errors (a refused
    upgrade: ``WSServerHandshakeError``) print the request URL, whose query holds the socket's token."""
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"{type(exc).__name__}({exc.status}, {exc.message!r})"
    return repr(exc)
