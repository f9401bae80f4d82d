"""The control API's settings sections: the API itself and payments (Stripe, credit packs)."""

from __future__ import annotations

from dataclasses import dataclass, field

from switchboard.errors import SettingsError
from switchboard.sections import SECRET, check_port, check_positive


@dataclass(frozen=True)
class ApiSettings:
    """The control API process."""

    host: str = "127.0.0.1"
    """Address ``switchboard api`` binds."""
    port: int = 8082
    """TCP port of ``switchboard api``."""
    admin_email: str = "admin@switchboard.local"
    """Login of the administrator account created on first start."""
    refresh_ttl_s: int = 30 * 86400
    """Lifetime of a refresh token, in seconds (each use rotates it)."""
    rate_user_per_min: int = 600
    """Requests per minute of one free-tier user (sliding window); over it: 429 with Retry-After."""
    rate_premium_per_min: int = 3000
    """Requests per minute of one premium user."""
    rate_ip_per_min: int = 3000
    """Requests per minute from one client address, signed in or not."""
    photo_max_bytes: int = 5 * 1024 * 1024
    """Largest accepted profile photo or chat attachment upload."""
    json_max_bytes: int = 64 * 1024
    """Largest JSON request body; a bigger one is refused (413) before it is read whole."""
    image_max_side: int = 8192
    """Largest width or height of an uploaded image, in pixels (checked before decoding; over: 413)."""
    image_max_pixels: int = 25_000_000
    """Largest width x height x frames of an uploaded image: decompression bombs are refused (413)."""
    media_dir: str = ""
    """Local-disk storage of uploads; empty: ``<data_dir>/media``."""
    ppv_max_price: int = 10_000
    """Highest price, in credits, of a pay-per-view chat attachment (docs/payments.md)."""
    smtp_host: str = ""
    """SMTP relay for outgoing mail; empty: mail is written to the log (and the outbox table)."""
    smtp_port: int = 25
    """SMTP port."""
    mail_from: str = "switchboard@localhost"
    """Sender address of outgoing mail."""
    # --- sign-in abuse limits (issue 12) ---
    hash_slots: int = 0
    """Password hashes (argon2) computed at once; 0: one per core."""
    hash_queue: int = 16
    """Password hashes that may wait for a slot; beyond them: 503 with Retry-After at once."""
    auth_ip_per_min: int = 60
    """Sign-in requests (register, login, verify, resend, forgot, reset) per minute from one address."""
    auth_email_per_min: int = 10
    """Sign-in requests per minute naming one email (whether or not an account has it)."""
    code_failures: int = 5
    """Wrong emailed codes for one address (over all its codes) before it is locked."""
    code_lockout_s: int = 900
    """How long a locked address refuses every code, counted from its last wrong code."""
    mails_per_hour: int = 3
    """Sign-in mails (codes, notices) sent to one address per hour; more are dropped silently."""
    answer_floor_ms: int = 250
    """register, resend and forgot answer no sooner than this, whether or not the email has an account."""
    # Overload (control_api/admission.py): shed with 503 + Retry-After rather than queue.
    max_in_flight: int = 16
    """Requests worked on at once (keep it under the Postgres pool of 20); more wait in the admission queue."""
    admission_queue: int = 32
    """Requests that may wait for a slot; beyond it a request is refused at once (503)."""
    admission_wait_ms: float = 20.0
    """Longest wait in the admission queue before a 503."""
    admission_priority_slots: int = 4
    """Requests of priority routes (Stripe's webhook) worked on at once beyond ``max_in_flight``:
    admitted at once, neither queued nor refused for lag; more pass the gate as any request does."""
    lag_shed_ms: float = 40.0
    """New requests get 503 while the event loop runs more than this late (the backlog no counter sees).
    An accepted request waits at most about this in kernel buffers, plus ``admission_wait_ms`` in the
    queue, plus its own work: the three stay well under the 100 ms the accepted p99 must keep."""
    overload_retry_after_s: float = 1.0
    """``Retry-After`` sent with a 503 (whole seconds, at least 1)."""
    read_cache_ttl_ms: float = 2000.0
    """How long the token routes keep an account's Postgres facts (control_api/cache.py); a ban,
    revocation, premium change or block drops them at once through the sanctions channel."""

    def __post_init__(self) -> None:
        check_port(self.port, "port")
        check_port(self.smtp_port, "smtp_port")
        if "@" not in self.admin_email:
            raise SettingsError("admin_email", f"must be an email address, got {self.admin_email!r}")
        for name in ("refresh_ttl_s", "rate_user_per_min", "rate_premium_per_min", "rate_ip_per_min",
                     "photo_max_bytes", "hash_queue", "auth_ip_per_min", "auth_email_per_min", "code_failures",
                     "code_lockout_s", "mails_per_hour", "json_max_bytes", "image_max_side", "image_max_pixels",
                     "ppv_max_price"):
            check_positive(getattr(self, name), name)
        for name in ("hash_slots", "answer_floor_ms"):
            if getattr(self, name) < 0:
                raise SettingsError(name, f"must be >= 0, got {getattr(self, name)}")
        for name in ("max_in_flight", "admission_wait_ms", "lag_shed_ms", "overload_retry_after_s",
                     "read_cache_ttl_ms"):
            check_positive(getattr(self, name), name)
        if self.admission_queue < 0:
            raise SettingsError("admission_queue", f"must be >= 0, got {self.admission_queue}")


@dataclass(frozen=True)
class CreditPack:
    """One pack of credits sold for a fixed price."""

    name: str
    """Path segment and Stripe metadata (``small``)."""
    credits: int
    """Credits added to the wallet."""
    price: int
    """Price in the currency's minor units (cents)."""

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise SettingsError("packs", f"a pack name must be a plain word, got {self.name!r}")
        check_positive(self.credits, "packs")
        check_positive(self.price, "packs")


def _packs(raw: tuple[str, ...]) -> tuple[CreditPack, ...]:
    packs = []
    for item in raw:
        try:
            name, credits, price = item.split(":")
            packs.append(CreditPack(name, int(credits), int(price)))
        except ValueError:
            raise SettingsError("packs", f"each pack is name:credits:price, got {item!r}") from None
    return tuple(packs)


@dataclass(frozen=True)
class PaymentsSettings:
    """Stripe, the credit ledger and the price catalogue (docs/payments.md)."""

    stripe_api_key: str = field(default="", metadata=SECRET)
    """Stripe secret key (``sk_test_...``); empty: payments are off (their routes answer 404)."""
    stripe_publishable_key: str = "pk_test_switchboard"
    """Key the browser's Stripe.js uses; given to clients by ``/api/payments/catalogue``."""
    stripe_api_base: str = ""
    """Stripe API address; empty: Stripe's own. ``switchboard up --stripe-emulator`` points it at localstripe."""
    stripe_webhook_secret: str = field(default="", metadata=SECRET)
    """Signing secret of the webhook endpoint (``whsec_...``); empty: every webhook is refused."""
    stripe_timeout_s: float = 10.0
    """Timeout of each Stripe call."""
    stripe_retries: int = 2
    """Network retries of a Stripe call (the same idempotency key each time)."""
    currency: str = "eur"
    """Currency of every price."""
    premium_price: int = 999
    """Premium, per month, in minor units."""
    premium_plan: str = "switchboard-premium-monthly"
    """Id of the monthly premium plan (price) in Stripe; created at start when missing."""
    packs: tuple[str, ...] = ("small:100:499", "medium:250:999", "large:700:2499")
    """Credit packs as ``name:credits:price`` (price in minor units)."""
    creator_share_percent: int = 70
    """Share of every credit spent on a creator that goes to the creator's earnings; the rest is revenue."""
    hold_sweep_s: float = 5.0
    """How often expired holds are voided (they are also voided when read)."""
    webhook_tolerance_s: int = 300
    """Largest age (either way) of a webhook signature's timestamp."""
    portal_return_url: str = "http://127.0.0.1:8080/"
    """Where Stripe's customer portal and Checkout send the user back."""
    payout_minimum: int = 1000
    """Least earnings (credits) a creator may ask to be paid out."""
    ticket_refund_window_s: int = 600
    """A paid show that ends within this long of its start refunds every ticket sold for it."""
    gift_max: int = 100_000
    """Largest gift (credits) one viewer may send at once."""

    def __post_init__(self) -> None:
        check_positive(self.stripe_timeout_s, "stripe_timeout_s")
        check_positive(self.premium_price, "premium_price")
        check_positive(self.hold_sweep_s, "hold_sweep_s")
        check_positive(self.webhook_tolerance_s, "webhook_tolerance_s")
        if self.stripe_retries < 0:
            raise SettingsError("stripe_retries", f"must be >= 0, got {self.stripe_retries}")
        if not 0 <= self.creator_share_percent <= 100:
            raise SettingsError("creator_share_percent", f"must be 0-100, got {self.creator_share_percent}")
        names = [p.name for p in self.credit_packs]
        if len(names) != len(set(names)):
            raise SettingsError("packs", f"pack names must differ, got {names}")

    @property
    def credit_packs(self) -> tuple[CreditPack, ...]:
        return _packs(self.packs)


@dataclass(frozen=True)
class WebhookSettings:
    """Deliveries of events to integrators' endpoints (control_api/webhooks/)."""

    retry_for_s: float = 3 * 86400
    """How long a delivery is retried after its event (at least a day: an endpoint may be down that long)."""
    backoff_base_s: float = 5.0
    """First retry delay; each next one doubles (with jitter), up to ``backoff_max_s``."""
    backoff_max_s: float = 3600.0
    """Longest delay between two attempts."""
    timeout_s: float = 10.0
    """An attempt that has no answer in this long fails (and is retried)."""
    concurrency: int = 8
    """Deliveries in flight at once, per API process."""
    poll_s: float = 0.1
    """How often the dispatcher looks for due deliveries (one indexed query; the delivery SLO is p99 < 500 ms)."""
    keep_s: float = 30 * 86400
    """Events older than this, with nothing left pending, are deleted with their deliveries and log."""

    def __post_init__(self) -> None:
        for name in ("retry_for_s", "backoff_base_s", "backoff_max_s", "timeout_s", "concurrency", "poll_s",
                     "keep_s"):
            check_positive(getattr(self, name), name)
        if self.retry_for_s < self.backoff_base_s:
            raise SettingsError("retry_for_s", "must be at least backoff_base_s")
        if self.keep_s < self.retry_for_s:
            raise SettingsError("keep_s", "must be at least retry_for_s (an event is kept while it is retried)")
