"""Typed ids shared by every plane. Plain strings on the wire, distinct types for mypy."""

from __future__ import annotations

import secrets
from typing import NewType

UserId = NewType("UserId", str)
"""An account's id (a UUID string minted by the control API)."""
RoomId = NewType("RoomId", str)
"""A show or call room."""
SessionId = NewType("SessionId", str)
"""One pairing of two users or one socket session; reports refer to it."""
NodeId = NewType("NodeId", str)
"""One node process."""


def new_id(prefix: str = "") -> str:
    """A random, URL-safe id (128 bits), optionally prefixed (``room_...``)."""
    return prefix + secrets.token_urlsafe(16)
