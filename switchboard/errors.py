"""The kernel's error vocabulary. Planes map these to wire codes at their edge only."""

from __future__ import annotations


class SwitchboardError(Exception):
    """Base of every error Switchboard raises on purpose."""


class SettingsError(SwitchboardError):
    """A setting is unknown or has a bad value; start-up stops."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"setting {key}: {problem}")
        self.key = key
        self.problem = problem


class TokenError(SwitchboardError):
    """A token is missing, malformed, expired, tampered or signed by another key."""


class EmbeddedServiceError(SwitchboardError):
    """An embedded Redis or Postgres failed to start or to answer."""


class PortInUse(SwitchboardError):
    """The address a process must listen on is taken by another process."""

    def __init__(self, host: str, port: int, setting: str = "") -> None:
        super().__init__(f"{host}:{port} is already in use by another process")
        self.host = host
        self.port = port
        self.setting = setting
        """The setting that moves this port, when the raiser knows it (else the command's main port)."""
