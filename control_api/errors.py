"""The control API's error vocabulary. ``control_api.http`` maps each to an RFC 9457 problem."""

from __future__ import annotations

from switchboard.errors import SwitchboardError


class ApiError(SwitchboardError):
    """Base of the API's deliberate refusals; ``detail`` is safe to show to the caller."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ValidationFailed(ApiError):
    """Input did not match its declared shape; ``fields`` names each bad field and why."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("the request has invalid fields: " + ", ".join(sorted(fields)))
        self.fields = fields


class UnreadableFields(ValidationFailed):
    """Fields whose text is not Unicode a database can store (a lone surrogate such as ``\\ud800``):
    the request itself is malformed (400), not merely invalid; ``fields`` names each one."""


class BadRequest(ApiError):
    """The request cannot be read (bad JSON, wrong content type)."""


class Unauthenticated(ApiError):
    """No valid credentials (missing, expired or revoked token, wrong password)."""


class Forbidden(ApiError):
    """Authenticated, but not allowed (banned, not a moderator, blocked)."""


class NotFound(ApiError):
    """No such thing visible to this caller (blocked users are not found either)."""


class Conflict(ApiError):
    """The state forbids it (email or pseudo taken, idempotency key in flight)."""


class TooLarge(ApiError):
    """An upload is over its size limit."""


class UnsupportedMedia(ApiError):
    """An upload's type is not accepted."""


class RateLimited(ApiError):
    """Too many requests in the window; retry after ``retry_after_s`` seconds."""

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class Unavailable(ApiError):
    """The server is saturated (e.g. every password-hashing slot and its queue are taken); retry
    after ``retry_after_s`` seconds. Refused at once rather than queued."""

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class PaymentRequired(ApiError):
    """Money is missing: too few credits for a spend, or the card was declined."""


class ServiceUnavailable(Unavailable):
    """A service this needs is off or not answering (Stripe down or not configured); retry later."""

    def __init__(self, detail: str, retry_after_s: int = 5) -> None:
        super().__init__(detail, retry_after_s)
