"""Signaling's error vocabulary. Each carries its wire ``code``; the socket turns it into an error frame.

Errors of the SFU, the matchmaker and tokens are mapped to these codes at the socket edge only
(:func:`signaling.dispatch.wire_error`).
"""

from __future__ import annotations

from switchboard.errors import SwitchboardError


class SignalingError(SwitchboardError):
    """Base: ``code`` goes on the wire, ``message`` says what to fix."""

    code = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadMessage(SignalingError):
    """A field is missing, of the wrong type or out of bounds."""

    code = "bad_message"


class UnknownType(SignalingError):
    """The server does not handle this ``type``."""

    code = "unknown_type"


class Unauthorized(SignalingError):
    """No token, or a bad or expired one (the socket is then closed with 4001)."""

    code = "unauthorized"


class Forbidden(SignalingError):
    """The token's grants do not open this door."""

    code = "forbidden"


class NotFound(SignalingError):
    """No such call, show or peer (or not one the sender is part of)."""

    code = "not_found"


class Busy(SignalingError):
    """The callee (or the caller) is already in a call."""

    code = "busy"


class Conflict(SignalingError):
    """The request does not fit the current state (accepting a call that already ended...)."""

    code = "conflict"


class RateLimited(SignalingError):
    """Too many messages (per socket) or chat lines (per user); slow down."""

    code = "rate_limited"


class Unavailable(SignalingError):
    """A service this node needs is not there (no matchmaker wired, the SFU worker is down)."""

    code = "unavailable"


class Muted(SignalingError):
    """The sender may not chat: muted by a moderator (everywhere) or in this show."""

    code = "muted"


class PaymentRequired(SignalingError):
    """Credits are missing: a paid show without its ticket, a paid call the caller cannot pay for."""

    code = "payment_required"
