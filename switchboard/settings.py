"""One typed settings tree: defaults < optional TOML file < ``SWITCHBOARD_*`` environment.

Loaded once by the composition root (``switchboard.cli``) and passed down in narrow slices
(``settings.node``, ``settings.api``...). Domain code never reads the environment.

Environment names are ``SWITCHBOARD_<KEY>`` for top-level keys (``SWITCHBOARD_REDIS_URL``) and
``SWITCHBOARD_<SECTION>_<KEY>`` for section keys (``SWITCHBOARD_HTTP_PORT``). An unknown key, in
the file or the environment, or a bad value stops start-up with a :class:`SettingsError` that names
the key.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from switchboard.errors import SettingsError

ENV_PREFIX = "SWITCHBOARD_"
CONFIG_ENV = "SWITCHBOARD_CONFIG"
"""Names the optional TOML file; not itself a setting."""

SECRET = {"secret": True}
"""Field metadata: the value is masked by ``switchboard config``."""


def _port(value: int, name: str) -> None:
    if not 0 <= value <= 65535:
        raise SettingsError(name, f"must be a TCP port (0-65535), got {value}")


def _positive(value: float, name: str) -> None:
    if value <= 0:
        raise SettingsError(name, f"must be > 0, got {value}")


@dataclass(frozen=True)
class HttpSettings:
    """The one listener of ``switchboard up`` (web pages, /api, /ws)."""

    host: str = "127.0.0.1"
    """Address to bind."""
    port: int = 8080
    """TCP port; 0 picks a free one."""

    def __post_init__(self) -> None:
        _port(self.port, "port")


@dataclass(frozen=True)
class NodeSettings:
    """A node process: signaling WebSockets and the SFU."""

    host: str = "127.0.0.1"
    """Address the node's HTTP/WebSocket listener binds."""
    port: int = 8081
    """TCP port of ``switchboard node``."""
    workers: int = 0
    """SFU worker processes; 0 means one per core."""
    viewers_per_worker: int = 100
    """Viewers of one show a worker takes before the show is piped into another worker; 0: never pipe."""
    rtc_addresses: tuple[str, ...] = ("127.0.0.1",)
    """Local addresses the SFU gathers ICE candidates on (aioice skips loopback by itself)."""
    announced_address: str = ""
    """Public address written into candidates instead of the local one (behind NAT); empty: none."""
    ws_max_frame_bytes: int = 64 * 1024
    """Largest signaling frame accepted; a bigger one gets a ``too_large`` error frame."""
    ws_rate_per_s: float = 50.0
    """Sustained messages per second one socket may send (token bucket)."""
    ws_rate_burst: int = 100
    """Messages one socket may send at once above the sustained rate."""
    ws_send_queue: int = 256
    """Frames queued for one socket; a reader slower than this is dropped (close 1013)."""
    ws_ping_interval_s: float = 20.0
    """WebSocket ping interval; a socket that misses the pong is closed."""
    ws_auth_timeout_s: float = 10.0
    """Time a socket has to send its token when it gave none in the URL."""
    ws_abuse_limit: int = 20
    """Error frames one socket may earn within a minute before it is closed with 1008."""
    call_ring_timeout_s: float = 30.0
    """A 1:1 call that nobody accepts ends (``timeout``) after this long."""
    resume_window_s: float = 15.0
    """A dropped socket's call or show is kept this long for a reconnect with its resume token."""
    presence_ttl_s: int = 60
    """A user's presence key lives this long without a heartbeat (the node refreshes it at a third)."""
    chat_rate_per_s: float = 1.0
    """Sustained show-chat messages per second per user."""
    chat_burst: int = 5
    """Show-chat messages a user may send at once above the sustained rate."""
    ws_max_sockets_per_token: int = 3
    """Sockets one token may hold open on a node at once; the next one gets ``too_many_sockets`` and close 4029."""
    ws_max_sockets_per_user: int = 10
    """Sockets one user may hold open on a node at once (all tokens); beyond: ``too_many_sockets``, close 4029."""
    call_media: str = "p2p"
    """Where friends' 1:1 calls carry their media: ``p2p`` (browser to browser) or ``sfu`` (through this
    node's SFU from the start, so a moderator can tap any call without the parties seeing a change).
    Chosen by the call's category when it starts, never by a tap (docs/sfu.md: the bandwidth trade-off)."""
    match_media: str = "sfu"
    """Where random-chat matches carry their media (strangers: where abuse happens, so tappable by
    default): ``sfu`` or ``p2p``."""
    # Overload (signaling/admission.py): a node at capacity refuses new sockets (``overloaded``, 1013).
    ws_max_handshakes: int = 64
    """Sockets that may be between upgrade and ``hello`` at once; more are refused."""
    ws_max_connects_per_s: float = 1000.0
    """Sockets opened per second at most (a bucket of one second's worth); 0: no limit."""
    ws_max_sockets: int = 0
    """Sockets one node holds at most; 0: no cap (memory is the limit: ~19 KiB each)."""
    lag_shed_ms: float = 100.0
    """New sockets are refused while the event loop runs more than this late."""
    overload_retry_after_s: float = 1.0
    """``retry_after`` in the ``overloaded`` frame (whole seconds, at least 1)."""

    def __post_init__(self) -> None:
        _port(self.port, "port")
        for name in ("call_media", "match_media"):
            if getattr(self, name) not in ("p2p", "sfu"):
                raise SettingsError(name, f"must be 'p2p' or 'sfu', got {getattr(self, name)!r}")
        if self.workers < 0:
            raise SettingsError("workers", f"must be >= 0, got {self.workers}")
        if self.viewers_per_worker < 0:
            raise SettingsError("viewers_per_worker", f"must be >= 0, got {self.viewers_per_worker}")
        for name in ("ws_max_sockets", "ws_max_connects_per_s"):
            if getattr(self, name) < 0:
                raise SettingsError(name, f"must be >= 0, got {getattr(self, name)}")
        for name in ("ws_max_handshakes", "lag_shed_ms", "overload_retry_after_s"):
            _positive(getattr(self, name), name)
        if not self.rtc_addresses:
            raise SettingsError("rtc_addresses", "needs at least one address")
        for name in ("ws_max_frame_bytes", "ws_rate_per_s", "ws_rate_burst", "ws_send_queue", "ws_ping_interval_s",
                     "ws_auth_timeout_s", "ws_abuse_limit", "call_ring_timeout_s", "resume_window_s",
                     "presence_ttl_s", "chat_rate_per_s", "chat_burst", "ws_max_sockets_per_token",
                     "ws_max_sockets_per_user"):
            _positive(getattr(self, name), name)


@dataclass(frozen=True)
class SfuSettings:
    """The media plane of a node (its SFU workers)."""

    keyframe_interval_s: float = 4.0
    """Every published video track is asked for a keyframe this often, whoever watches: a moderator's
    tap starts at the next one without asking (no PLI a party could see), and evidence clips need
    them. Rounded up to the SFU's one-second tick."""
    clip_seconds: float = 30.0
    """Length of an evidence clip: every published track keeps its last this-many seconds of RTP in
    memory (about 6 MB per 1.5 Mbit/s video track at 30 s) for a moderator's ``clip.save``. 0: no
    buffers, no clips."""

    def __post_init__(self) -> None:
        _positive(self.keyframe_interval_s, "keyframe_interval_s")
        if self.clip_seconds < 0:
            raise SettingsError("clip_seconds", f"must be >= 0, got {self.clip_seconds}")


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
    admission_wait_ms: float = 40.0
    """Longest wait in the admission queue before a 503."""
    lag_shed_ms: float = 100.0
    """New requests get 503 while the event loop runs more than this late (the backlog no counter sees)."""
    overload_retry_after_s: float = 1.0
    """``Retry-After`` sent with a 503 (whole seconds, at least 1)."""

    def __post_init__(self) -> None:
        _port(self.port, "port")
        _port(self.smtp_port, "smtp_port")
        if "@" not in self.admin_email:
            raise SettingsError("admin_email", f"must be an email address, got {self.admin_email!r}")
        for name in ("refresh_ttl_s", "rate_user_per_min", "rate_premium_per_min", "rate_ip_per_min",
                     "photo_max_bytes", "hash_queue", "auth_ip_per_min", "auth_email_per_min", "code_failures",
                     "code_lockout_s", "mails_per_hour", "json_max_bytes", "image_max_side", "image_max_pixels"):
            _positive(getattr(self, name), name)
        for name in ("hash_slots", "answer_floor_ms"):
            if getattr(self, name) < 0:
                raise SettingsError(name, f"must be >= 0, got {getattr(self, name)}")
        for name in ("max_in_flight", "admission_wait_ms", "lag_shed_ms", "overload_retry_after_s"):
            _positive(getattr(self, name), name)
        if self.admission_queue < 0:
            raise SettingsError("admission_queue", f"must be >= 0, got {self.admission_queue}")


@dataclass(frozen=True)
class MatchmakerSettings:
    """A matchmaker process."""

    host: str = "127.0.0.1"
    """Address of the matchmaker's health/metrics listener."""
    port: int = 8083
    """TCP port of the matchmaker's health/metrics listener."""
    ticket_ttl_s: int = 300
    """A queued ticket expires this long after ``queue.join`` (a node that died leaves no ticket behind)."""
    rematch_window_s: int = 3600
    """Two users paired once are not paired again within this window."""
    session_ttl_s: int = 86400
    """How long a pair's record (``session_id``, both users, time, tickets) is kept in Redis."""
    pool_size: int = 10000
    """At most this many of the oldest tickets are scored in one round."""
    window: int = 512
    """Oldest tickets (of this process's shard) served per round; each gets at most one partner."""
    candidates: int = 1024
    """Each served ticket is scored first against this many oldest tickets of the shard, then (if
    none fits) against the whole pool."""
    idle_ms: int = 20
    """After a round that made no pair, wait this long at most for news on the queue's feed."""
    expand_after_ms: tuple[int, ...] = (0, 50, 100, 150)
    """Soft-preference expansion steps: step ``i`` applies once a ticket has waited this long (first
    is 0). Fully widened by 150 ms: later steps would put the wait p99 past 200 ms (docs/matchmaker.md)."""
    soft_age_gap_years: tuple[int, ...] = (5, 10, 20, 0)
    """Soft age gap at each step (0: no limit). Hard (premium) age filters never widen."""
    soft_distance_km: tuple[int, ...] = (500, 2000, 5000, 0)
    """Soft distance at each step, when both users gave a location (0: no limit)."""

    def __post_init__(self) -> None:
        _port(self.port, "port")
        for name in ("ticket_ttl_s", "rematch_window_s", "session_ttl_s", "pool_size", "window", "candidates"):
            _positive(getattr(self, name), name)
        if self.idle_ms < 0:
            raise SettingsError("idle_ms", f"must be >= 0, got {self.idle_ms}")
        steps = self.expand_after_ms
        if not steps or steps[0] != 0 or list(steps) != sorted(set(steps)):
            raise SettingsError("expand_after_ms", f"must start at 0 and strictly increase, got {steps}")
        for name in ("soft_age_gap_years", "soft_distance_km"):
            values = getattr(self, name)
            if len(values) != len(steps):
                raise SettingsError(name, f"needs one value per expansion step ({len(steps)}), got {values}")
            if any(v < 0 for v in values):
                raise SettingsError(name, f"must be >= 0, got {values}")


@dataclass(frozen=True)
class TokenSettings:
    """Signed EdDSA tokens (control API signs, nodes verify with the public key only)."""

    private_key_file: str = ""
    """PEM Ed25519 private key; empty: ``<data_dir>/secrets/token_ed25519.pem`` (made on first ``up``)."""
    public_key_file: str = ""
    """PEM Ed25519 public key; empty: ``<data_dir>/secrets/token_ed25519.pub.pem``."""
    issuer: str = "switchboard"
    """``iss`` claim written and required."""
    room_ttl_s: int = 300
    """Lifetime of a room/WebSocket token, in seconds."""
    access_ttl_s: int = 900
    """Lifetime of an API access token, in seconds."""

    def __post_init__(self) -> None:
        _positive(self.room_ttl_s, "room_ttl_s")
        _positive(self.access_ttl_s, "access_ttl_s")


@dataclass(frozen=True)
class TurnSettings:
    """coturn with short-lived credentials (TURN REST scheme, ``use-auth-secret``)."""

    secret_file: str = ""
    """File holding the shared secret; empty: ``<data_dir>/secrets/turn_secret`` (made on first ``up``)."""
    previous_secret_file: str = ""
    """During a secret change-over: the old secret, still accepted by coturn (credentials use the new one)."""
    ttl_s: int = 0
    """Lifetime of a TURN credential, in seconds; 0: the room token lifetime (``tokens.room_ttl_s``),
    which is also its upper bound: a credential outlives no token that lets its holder call."""
    host: str = ""
    """Public host name or address of the TURN server clients are told about; empty: no STUN/TURN offered."""
    port: int = 3478
    """STUN/TURN port (UDP and TCP)."""
    tls_port: int = 5349
    """TURNS (TLS) port; offered only when a certificate is configured."""
    tls_cert_file: str = ""
    """PEM certificate chain for TURNS; empty: no TURNS."""
    tls_key_file: str = ""
    """PEM private key for TURNS."""
    realm: str = "switchboard"
    """coturn realm."""
    listening_ips: tuple[str, ...] = ()
    """Addresses coturn listens on; empty: all."""
    relay_ips: tuple[str, ...] = ()
    """Addresses coturn relays from; empty: its choice."""
    external_ip: str = ""
    """Public address of a coturn behind NAT (``external-ip``)."""
    min_port: int = 49152
    """Lowest relay port."""
    max_port: int = 65535
    """Highest relay port."""
    user_quota: int = 12
    """Simultaneous allocations per user (``user-quota``)."""
    total_quota: int = 1200
    """Simultaneous allocations in all (``total-quota``)."""
    max_bps: int = 0
    """Bytes per second one session may relay (``max-bps``); 0: no cap."""

    def __post_init__(self) -> None:
        if self.ttl_s < 0:
            raise SettingsError("ttl_s", f"must be >= 0 (0: the room token lifetime), got {self.ttl_s}")
        for name in ("port", "tls_port", "min_port", "max_port"):
            _port(getattr(self, name), name)
        if self.min_port > self.max_port:
            raise SettingsError("min_port", f"must be <= max_port ({self.max_port}), got {self.min_port}")
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise SettingsError("tls_key_file", "tls_cert_file and tls_key_file go together")
        for name in ("user_quota", "total_quota"):
            _positive(getattr(self, name), name)
        if self.max_bps < 0:
            raise SettingsError("max_bps", f"must be >= 0, got {self.max_bps}")


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
        _positive(self.credits, "packs")
        _positive(self.price, "packs")


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

    def __post_init__(self) -> None:
        _positive(self.stripe_timeout_s, "stripe_timeout_s")
        _positive(self.premium_price, "premium_price")
        _positive(self.hold_sweep_s, "hold_sweep_s")
        _positive(self.webhook_tolerance_s, "webhook_tolerance_s")
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
class LogSettings:
    """Structured logging."""

    level: str = "INFO"
    """DEBUG, INFO, WARNING or ERROR."""
    format: str = "auto"
    """``json``, ``text``, or ``auto`` (text on a TTY, JSON otherwise)."""

    def __post_init__(self) -> None:
        if self.level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise SettingsError("level", f"must be DEBUG, INFO, WARNING or ERROR, got {self.level!r}")
        if self.format not in {"auto", "json", "text"}:
            raise SettingsError("format", f"must be auto, json or text, got {self.format!r}")


@dataclass(frozen=True)
class MetricsSettings:
    """Where production processes serve ``/metrics``: a listener of its own, never their public port.
    (``switchboard up``, a laptop's all-in-one, keeps it on its one port; the matchmaker's only
    listener is internal already and keeps it there.)"""

    host: str = "127.0.0.1"
    """Address of the metrics listener of ``switchboard node`` and ``switchboard api``."""
    node_port: int = 9181
    """Its TCP port in ``switchboard node`` (0 picks a free one, logged)."""
    api_port: int = 9182
    """Its TCP port in ``switchboard api`` (0 picks a free one, logged)."""

    def __post_init__(self) -> None:
        _port(self.node_port, "node_port")
        _port(self.api_port, "api_port")


@dataclass(frozen=True)
class Settings:
    """The whole tree. Sections are handed to the plane that owns them."""

    data_dir: Path = Path("var")
    """Where embedded Redis/Postgres data and generated secrets live."""
    redis_url: str = field(default="", metadata=SECRET)
    """External Redis (``redis://host:6379/0``); empty: embedded (``up`` only)."""
    database_url: str = field(default="", metadata=SECRET)
    """External Postgres (``postgresql://user:pw@host/db``); empty: embedded (``up`` only)."""
    http: HttpSettings = field(default_factory=HttpSettings)
    node: NodeSettings = field(default_factory=NodeSettings)
    sfu: SfuSettings = field(default_factory=SfuSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    matchmaker: MatchmakerSettings = field(default_factory=MatchmakerSettings)
    tokens: TokenSettings = field(default_factory=TokenSettings)
    turn: TurnSettings = field(default_factory=TurnSettings)
    log: LogSettings = field(default_factory=LogSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    payments: PaymentsSettings = field(default_factory=PaymentsSettings)

    def __post_init__(self) -> None:
        if self.redis_url and urlsplit(self.redis_url).scheme not in {"redis", "rediss", "unix"}:
            raise SettingsError("redis_url", "must start with redis://, rediss:// or unix://")
        if self.database_url and not urlsplit(self.database_url).scheme.startswith("postgres"):
            raise SettingsError("database_url", "must start with postgresql://")
        if self.turn.ttl_s > self.tokens.room_ttl_s:
            raise SettingsError("turn.ttl_s", f"must be at most tokens.room_ttl_s ({self.tokens.room_ttl_s}), "
                                f"got {self.turn.ttl_s}")
        if not self.turn.ttl_s:  # frozen: resolved once here, so every plane reads the same lifetime
            object.__setattr__(self, "turn", dataclasses.replace(self.turn, ttl_s=self.tokens.room_ttl_s))

    @property
    def secrets_dir(self) -> Path:
        return self.data_dir / "secrets"


def _is_section(tp: object) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _coerce(raw: object, tp: object, key: str) -> object:
    """Turns a TOML value or an environment string into ``tp``; raises SettingsError naming ``key``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if raw in (None, "") else _coerce(raw, inner[0], key)
    if origin is tuple:
        items = [s.strip() for s in raw.split(",") if s.strip()] if isinstance(raw, str) else raw
        if not isinstance(items, list | tuple):
            raise SettingsError(key, f"must be a list, got {raw!r}")
        return tuple(_coerce(i, typing.get_args(tp)[0], key) for i in items)
    if tp is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
            return raw.lower() in {"1", "true", "yes", "on"}
        raise SettingsError(key, f"must be true or false, got {raw!r}")
    if tp in (int, float):
        if isinstance(raw, bool):
            raise SettingsError(key, f"must be a number, got {raw!r}")
        try:
            value = tp(raw)  # type: ignore[operator]
        except (TypeError, ValueError):
            raise SettingsError(key, f"must be {'an integer' if tp is int else 'a number'}, got {raw!r}") from None
        if tp is int and isinstance(raw, float) and raw != value:
            raise SettingsError(key, f"must be an integer, got {raw!r}")
        return value
    if tp is Path:
        if not isinstance(raw, str | Path):
            raise SettingsError(key, f"must be a path, got {raw!r}")
        return Path(raw)
    if tp is str:
        if not isinstance(raw, str):
            raise SettingsError(key, f"must be a string, got {raw!r}")
        return raw
    raise SettingsError(key, f"has an unsupported type {tp!r}")  # pragma: no cover - a bug in this file


def _build(cls: type, values: Mapping[str, object], prefix: str) -> object:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in values:
        if key not in names:
            raise SettingsError(prefix + key, "is not a known setting")
    kwargs: dict[str, object] = {}
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        tp, raw = hints[f.name], values[f.name]
        if _is_section(tp):
            if not isinstance(raw, Mapping):
                raise SettingsError(prefix + f.name, "must be a table of settings")
            kwargs[f.name] = _build(typing.cast(type, tp), raw, f"{prefix}{f.name}.")
        else:
            kwargs[f.name] = _coerce(raw, tp, prefix + f.name)
    try:
        return cls(**kwargs)
    except SettingsError as exc:
        raise SettingsError(prefix + exc.key, exc.problem) from None


def _env_values(environ: Mapping[str, str]) -> dict[str, object]:
    hints = typing.get_type_hints(Settings)
    sections = {f.name for f in dataclasses.fields(Settings) if _is_section(hints[f.name])}
    out: dict[str, object] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        rest = name[len(ENV_PREFIX):].lower()
        section = next((s for s in sections if rest.startswith(s + "_")), None)
        if section is None:
            out[rest] = raw
        else:
            typing.cast(dict, out.setdefault(section, {}))[rest[len(section) + 1:]] = raw
    return out


def _merge(base: dict[str, object], top: Mapping[str, object]) -> dict[str, object]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(typing.cast(Mapping, merged[key])), value)
        else:
            merged[key] = value
    return merged


def load_settings(
    config_file: Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Defaults, then the TOML file (``config_file`` or ``$SWITCHBOARD_CONFIG``), then the environment."""
    environ = os.environ if environ is None else environ
    path = config_file or (Path(environ[CONFIG_ENV]) if environ.get(CONFIG_ENV) else None)
    values: dict[str, object] = {}
    if path is not None:
        try:
            values = tomllib.loads(path.read_text())
        except OSError as exc:
            raise SettingsError("config file", f"{path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError("config file", f"{path}: {exc}") from None
    values = _merge(values, _env_values(environ))
    return typing.cast(Settings, _build(Settings, values, ""))


def _mask_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def describe(settings: object, prefix: str = "") -> list[tuple[str, str]]:
    """Flattened ``(dotted key, shown value)`` pairs with secrets masked, for ``switchboard config``."""
    rows: list[tuple[str, str]] = []
    for f in dataclasses.fields(typing.cast(type, settings)):
        value = getattr(settings, f.name)
        if dataclasses.is_dataclass(value):
            rows.extend(describe(value, f"{prefix}{f.name}."))
            continue
        shown = repr(str(value) if isinstance(value, Path) else value)
        if f.metadata.get("secret") and value:
            # A URL keeps its shape with the password hidden; any other secret (an API key) is hidden whole.
            shown = repr(_mask_url(str(value)) if "://" in str(value) else "***")
        rows.append((prefix + f.name, shown))
    return rows
