"""``GET /api/ice-servers``: the STUN/TURN list a client passes to RTCPeerConnection, with a TURN
credential minted for the caller (TURN REST scheme, see docs/turn.md)."""

from __future__ import annotations

from dataclasses import dataclass

from control_api.http import Call, Reply, Route
from switchboard.settings import TurnSettings
from turn.credentials import mint_credential
from turn.ice import ice_servers


@dataclass(frozen=True)
class IceServerIssuer:
    """Mints the list for one user; empty when no TURN host or secret is configured."""

    settings: TurnSettings
    secret: str

    def for_user(self, user_id: str) -> dict[str, object]:
        if not self.secret or not self.settings.host:
            return {"ice_servers": [], "ttl_s": self.settings.ttl_s}
        credential = mint_credential(self.secret, user_id, self.settings.ttl_s)
        return {
            "ice_servers": [s.to_json() for s in ice_servers(self.settings, credential)],
            "ttl_s": credential.ttl_s,
            "expires_at": credential.expires_at,
        }


async def _ice_servers(call: Call) -> Reply:
    return Reply(call.services.ice.for_user(str(call.me.user_id)))


def routes() -> list[Route]:
    return [
        Route("GET", "/ice-servers", _ice_servers,
              "STUN/TURN servers with a short-lived TURN credential for the caller", "tokens"),
    ]
