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

from switchboard.api_sections import ApiSettings, CreditPack, PaymentsSettings, WebhookSettings
from switchboard.errors import SettingsError
from switchboard.sections import (
    SECRET,
    HttpSettings,
    LogSettings,
    MatchmakerSettings,
    MetricsSettings,
    NodeSettings,
    SfuSettings,
    TokenSettings,
    TurnSettings,
)
from switchboard.tracing import TracingSettings

__all__ = [
    "CONFIG_ENV",
    "ENV_PREFIX",
    "SECRET",
    "ApiSettings",
    "CascadeSettings",
    "CreditPack",
    "HttpSettings",
    "LogSettings",
    "MatchmakerSettings",
    "MetricsSettings",
    "NodeSettings",
    "PaymentsSettings",
    "Settings",
    "SfuSettings",
    "TokenSettings",
    "TracingSettings",
    "TurnSettings",
    "WebhookSettings",
    "describe",
    "load_settings"
]
"""The sections live in switchboard/sections.py and switchboard/api_sections.py; import them from here."""

ENV_PREFIX = "SWITCHBOARD_"
CONFIG_ENV = "SWITCHBOARD_CONFIG"
"""Names the optional TOML file; not itself a setting."""


# --- cascade (issue 16: one show over several nodes, calls across nodes; docs/scaling.md) ------------

@dataclass(frozen=True)
class CascadeSettings:
    """Pipes between nodes: an edge node pulls a show (or a call's media) from its origin node."""

    secret: str = field(default="", metadata=SECRET, repr=False)
    """The nodes' shared secret (at least 16 characters; the same on every node): each datagram of a
    pipe between nodes carries a keyed tag of it, and datagrams without it are dropped and counted.
    Empty: this node neither pulls shows from other nodes nor serves them (a show's viewers must then
    be placed on its origin). Never logged; ``switchboard config`` shows ``***``."""
    pipe_address: str = ""
    """The address this node's pipes bind and other nodes send to (written in its registry entry);
    empty: the node's media address (``node.announced_address``, else its first ``rtc_addresses``)."""
    viewers_per_node: int = 0
    """Sessions this node takes before placement sends a show's further viewers to another node (which
    pulls the show from here); 0: no cap (the origin takes every viewer while it is not draining)."""
    pull_timeout_s: float = 10.0
    """How long an edge waits for the origin's answer to a pipe request before the join fails."""

    def __post_init__(self) -> None:
        if self.secret and len(self.secret.encode()) < 16:
            raise SettingsError("secret", "must be at least 16 characters (or empty: no cascade)")
        if self.viewers_per_node < 0:
            raise SettingsError("viewers_per_node", f"must be >= 0, got {self.viewers_per_node}")
        if self.pull_timeout_s <= 0:
            raise SettingsError("pull_timeout_s", f"must be > 0, got {self.pull_timeout_s}")


@dataclass(frozen=True)
class Settings:
    """The whole tree. Sections are handed to the plane that owns them."""

    data_dir: Path = Path("var")
    """Where embedded Redis/Postgres data and generated secrets live."""
    redis_url: str = field(default="", metadata=SECRET)
    """External Redis (``redis://host:6379/0``), or a Redis Cluster (``redis+cluster://host:6379``: one
    seed node, the others are discovered; ``rediss+cluster://`` with TLS); empty: embedded (``up`` only)."""
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
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    tracing: TracingSettings = field(default_factory=TracingSettings)
    cascade: CascadeSettings = field(default_factory=CascadeSettings)

    def __post_init__(self) -> None:
        if self.redis_url and urlsplit(self.redis_url).scheme not in {"redis", "rediss", "unix", "redis+cluster",
                                                                  "rediss+cluster"}:
            raise SettingsError("redis_url", "must start with redis://, rediss://, unix:// or redis+cluster://")
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
            value = tp(typing.cast(typing.Any, raw))
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
