"""The ICE server list a client gets (``GET /api/ice-servers`` and the node's join reply)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from switchboard.settings import TokenSettings, TurnSettings
from turn.credentials import TurnCredential, mint_credential


@dataclass(frozen=True)
class IceServer:
    """One entry of RTCConfiguration.iceServers."""

    urls: tuple[str, ...]
    """``stun:``, ``turn:`` or ``turns:`` URLs sharing the credential below."""
    username: str | None = None
    """TURN username (None for STUN)."""
    credential: str | None = None
    """TURN password (None for STUN)."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"urls": list(self.urls)}
        if self.username is not None:
            out["username"] = self.username
            out["credential"] = self.credential
        return out


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def ice_servers(settings: TurnSettings, credential: TurnCredential) -> list[IceServer]:
    """STUN, TURN over UDP and TCP, and TURNS when a certificate is configured; none without a host."""
    if not settings.host:
        return []
    host = _host(settings.host)
    turn_urls = [f"turn:{host}:{settings.port}?transport=udp", f"turn:{host}:{settings.port}?transport=tcp"]
    if settings.tls_cert_file:
        turn_urls.append(f"turns:{host}:{settings.tls_port}?transport=tcp")
    return [
        IceServer(urls=(f"stun:{host}:{settings.port}",)),
        IceServer(urls=tuple(turn_urls), username=credential.username, credential=credential.password),
    ]


def ice_servers_for(settings: TurnSettings, secret: str, user_id: str, *,
                    ttl_s: int | None = None, relay: bool = True) -> list[dict[str, Any]]:
    """The JSON list for one user, with a credential minted now for ``ttl_s`` (default
    ``settings.ttl_s``); empty without a TURN host or secret. ``relay=False`` (an account that may
    not call: unverified) gives the STUN entry only, no TURN credential."""
    if not secret or not settings.host:
        return []
    if not relay:
        return [IceServer(urls=(f"stun:{_host(settings.host)}:{settings.port}",)).to_json()]
    # 0 everywhere (a TurnSettings not resolved by Settings): the default room token lifetime.
    ttl = ttl_s or settings.ttl_s or TokenSettings().room_ttl_s
    return [s.to_json() for s in ice_servers(settings, mint_credential(secret, user_id, ttl))]
