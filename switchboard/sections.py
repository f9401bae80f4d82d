"""The settings sections of the planes and the kernel (each a frozen dataclass: defaults and
validation); :mod:`switchboard.settings` assembles them into the one tree and loads it."""

from __future__ import annotations

from dataclasses import dataclass

from switchboard.errors import SettingsError
from switchboard.headers import socket_origins

SECRET = {"secret": True}
"""Field metadata: the value is masked by ``switchboard config``."""


def check_port(value: int, name: str) -> None:
    """Raises SettingsError unless ``value`` is a TCP port."""
    if not 0 <= value <= 65535:
        raise SettingsError(name, f"must be a TCP port (0-65535), got {value}")


def check_positive(value: float, name: str) -> None:
    """Raises SettingsError unless ``value`` > 0."""
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
        check_port(self.port, "port")


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
    ws_max_connects_per_s: float = 600.0
    """Sockets opened per second at most (a bucket of one second's worth); 0: no limit. With ``ws_gate``
    the gate starts connects at this rate (the rest wait in its queue, then get the 503)."""
    ws_max_sockets: int = 0
    """Sockets one node holds at most; 0: no cap (memory is the limit: ~19 KiB each)."""
    lag_shed_ms: float = 100.0
    """New sockets are refused while the event loop runs more than this late."""
    overload_retry_after_s: float = 1.0
    """``retry_after`` in the ``overloaded`` frame (whole seconds, at least 1)."""
    ws_gate: bool = True
    """Gate connects at accept (switchboard/listener.py): the node starts a connect only while fewer than
    ``ws_max_handshakes`` are under way, and refuses what it cannot start within ``ws_gate_wait_s``
    with a raw ``503`` and ``Retry-After`` before any HTTP work. False: every connect is upgraded, and
    refused after the upgrade with an ``overloaded`` frame (~10x the CPU per refusal)."""
    ws_gate_per_pass: int = 16
    """Connects the gate starts per event-loop pass at most (a storm never runs as one long pass)."""
    ws_gate_queue: int = 1024
    """Accepted connects waiting for a handshake slot at most; more are refused at once."""
    ws_gate_wait_s: float = 2.0
    """Longest a connect waits for a handshake slot; longer, it is refused."""
    # Paid calls (signaling/call_meter.py): the node asks the API for each minute's hold (docs/payments.md).
    paid_minute_s: float = 60.0
    """Length of one billed minute of a paid call (short in tests)."""
    paid_hold_wait_s: float = 5.0
    """How long a paid call's invite waits for the API to hold its first minute before it fails (``unavailable``)."""
    # Many nodes (docs/scaling.md): the registry, placement and drain.
    public_url: str = ""
    """The base URL clients open this node's socket at (``https://node1.example.com``; ``/ws`` is added),
    written in the node registry; empty: ``http://<host>:<bound port>``."""
    page_origins: tuple[str, ...] = ()
    """Other nodes' base URLs (``https://node2.example.com``) the pages served here may open sockets to:
    placement can send a page to any node, and the pages' CSP allows only these origins besides its own."""
    region: str = ""
    """The region this node serves; placement prefers nodes of the client's region."""
    heartbeat_s: float = 1.0
    """How often the node rewrites its registry entry (load, draining)."""
    registry_ttl_s: float = 3.0
    """A registry entry lives this long without a heartbeat: a killed node is forgotten this soon."""
    drain_grace_s: float = 30.0
    """On SIGTERM or ``switchboard node drain``: how long the node waits for its clients to move to
    another node (each is sent ``reconnect``) before it stops anyway; 0: stop at once."""
    call_rejoin_s: float = 15.0
    """A party of a call whose node died has this long to come back on a live node (``call.rejoin``)
    before the call ends for both with ``node_lost`` (counted from when the registry forgot the node)."""

    def __post_init__(self) -> None:
        check_port(self.port, "port")
        try:
            socket_origins(self.page_origins)
        except ValueError as exc:
            raise SettingsError("page_origins", str(exc)) from None
        for name in ("heartbeat_s", "registry_ttl_s"):
            check_positive(getattr(self, name), name)
        if self.registry_ttl_s <= self.heartbeat_s:
            raise SettingsError("registry_ttl_s", f"must exceed heartbeat_s ({self.heartbeat_s}), "
                                f"got {self.registry_ttl_s}")
        if self.drain_grace_s < 0:
            raise SettingsError("drain_grace_s", f"must be >= 0, got {self.drain_grace_s}")
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
        for name in ("ws_max_handshakes", "lag_shed_ms", "overload_retry_after_s", "ws_gate_per_pass",
                     "ws_gate_queue", "ws_gate_wait_s"):
            check_positive(getattr(self, name), name)
        if not self.rtc_addresses:
            raise SettingsError("rtc_addresses", "needs at least one address")
        for name in ("ws_max_frame_bytes", "ws_rate_per_s", "ws_rate_burst", "ws_send_queue", "ws_ping_interval_s",
                     "ws_auth_timeout_s", "ws_abuse_limit", "call_ring_timeout_s", "resume_window_s",
                     "presence_ttl_s", "chat_rate_per_s", "chat_burst", "ws_max_sockets_per_token",
                     "ws_max_sockets_per_user", "paid_minute_s", "paid_hold_wait_s", "call_rejoin_s"):
            check_positive(getattr(self, name), name)


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
    # native fan-out (sfu/fanout.py) ----------------------------------------------------------
    fanout: str = "auto"
    """How packets reach viewers: ``native`` (the C extension: libsrtp2 and sendmmsg; start fails when it
    is not built), ``python`` (pylibsrtp and a sendto per copy) or ``auto`` (native when built; the
    choice is logged once per worker)."""
    fanout_batch: int = 64
    """Native: packets queued before they are sent (one ``sendmmsg`` per socket)."""
    fanout_flush_ms: float = 0.0
    """Native: 0 sends a received packet's copies at the end of its fan-out; more holds them up to
    this long to batch several received packets per socket."""
    fanout_srtp: str = "auto"
    """Native: ``auto`` encrypts with pylibsrtp's libsrtp (OpenSSL), ``system`` with the system's
    libsrtp2 (Debian's is built on NSS, which costs ~1 us more per copy)."""
    worker_slice_us: int = 300
    """Each SFU worker process asks the kernel for this scheduler slice (``sched_setattr``, Linux's
    EEVDF, no privilege needed): it then runs sooner when a packet wakes it on a busy box, with no more
    CPU than before (sfu/scheduling.py). 0: the kernel's default; the kernel clamps to 100-100000."""

    def __post_init__(self) -> None:
        check_positive(self.keyframe_interval_s, "keyframe_interval_s")
        if self.clip_seconds < 0:
            raise SettingsError("clip_seconds", f"must be >= 0, got {self.clip_seconds}")
        if self.fanout not in ("auto", "python", "native"):
            raise SettingsError("fanout", f"must be auto, python or native, got {self.fanout!r}")
        check_positive(self.fanout_batch, "fanout_batch")
        if not 0 <= self.fanout_flush_ms <= 100:
            raise SettingsError("fanout_flush_ms", f"must be 0 to 100, got {self.fanout_flush_ms}")
        if not 0 <= self.worker_slice_us <= 100_000:
            raise SettingsError("worker_slice_us", f"must be 0 to 100000, got {self.worker_slice_us}")
        if self.fanout_srtp not in ("auto", "system"):
            raise SettingsError("fanout_srtp", f"must be auto or system, got {self.fanout_srtp!r}")


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
        check_port(self.port, "port")
        for name in ("ticket_ttl_s", "rematch_window_s", "session_ttl_s", "pool_size", "window", "candidates"):
            check_positive(getattr(self, name), name)
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
        check_positive(self.room_ttl_s, "room_ttl_s")
        check_positive(self.access_ttl_s, "access_ttl_s")


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
            check_port(getattr(self, name), name)
        if self.min_port > self.max_port:
            raise SettingsError("min_port", f"must be <= max_port ({self.max_port}), got {self.min_port}")
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise SettingsError("tls_key_file", "tls_cert_file and tls_key_file go together")
        for name in ("user_quota", "total_quota"):
            check_positive(getattr(self, name), name)
        if self.max_bps < 0:
            raise SettingsError("max_bps", f"must be >= 0, got {self.max_bps}")


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
        check_port(self.node_port, "node_port")
        check_port(self.api_port, "api_port")
