"""``GET /api/ice-servers``: the STUN/TURN list a client passes to RTCPeerConnection, with a TURN
credential minted for the caller (TURN REST scheme, see docs/turn.md)."""

from __future__ import annotations

from dataclasses import dataclass

from control_api.http import Call, Reply, Route
from switchboard.settings import TurnSettings
from turn.ice import ice_servers_for


@dataclass(frozen=True)
class IceServerIssuer:
    """Mints the list for one user; empty when no TURN host or secret is configured."""

    settings: TurnSettings
    secret: str

    def for_user(self, user_id: str) -> dict[str, object]:
        return {"ice_servers": ice_servers_for(self.settings, self.secret, user_id), "ttl_s": self.settings.ttl_s}


async def _ice_servers(call: Call) -> Reply:
    return Reply(call.services.ice.for_user(str(call.me.user_id)))


def routes() -> list[Route]:
    return [
        Route("GET", "/ice-servers", _ice_servers,
              "STUN/TURN servers with a short-lived TURN credential for the caller", "tokens"),
    ]
