"""``GET /api/ice-servers``: the STUN/TURN list a client passes to RTCPeerConnection, with a TURN
credential minted for the caller (TURN REST scheme, see docs/turn.md).

A TURN credential lets its holder relay media, so it goes only to accounts that may call: verified,
not banned, not deleted (403 otherwise), and it lives as long as a room token.
"""

from __future__ import annotations

from dataclasses import dataclass

from control_api.errors import Forbidden
from control_api.http import Call, Reply, Route
from control_api.models import Account
from control_api.sanctions import active_ban
from switchboard.settings import TurnSettings
from turn.ice import ice_servers_for


@dataclass(frozen=True)
class IceServerIssuer:
    """Mints the list for one user; empty when no TURN host or secret is configured."""

    settings: TurnSettings
    secret: str
    ttl_s: int
    """Credential lifetime: the room token lifetime (``TurnSettings.ttl_s`` when set, if shorter)."""

    def for_user(self, user_id: str) -> dict[str, object]:
        return {"ice_servers": ice_servers_for(self.settings, self.secret, user_id, ttl_s=self.ttl_s),
                "ttl_s": self.ttl_s}


async def _ice_servers(call: Call) -> Reply:
    me = call.me.user_id
    async with call.services.sessions() as session:
        account = await session.get(Account, me)
        if account is None or account.deleted_at is not None:
            raise Forbidden("this account is deleted")
        if await active_ban(session, me) is not None:
            raise Forbidden("this account is banned")
        if not account.email_verified:
            raise Forbidden("verify your email first: TURN relays calls, which unverified accounts cannot make")
    return Reply(call.services.ice.for_user(str(me)))


def routes() -> list[Route]:
    return [
        Route("GET", "/ice-servers", _ice_servers,
              "STUN/TURN servers with a short-lived TURN credential for the caller (verified accounts only)",
              "tokens"),
    ]
