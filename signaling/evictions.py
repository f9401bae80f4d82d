"""How a node's sessions end from outside their sockets: a ban (error frame, 4003), a token revocation
(error frame, 4001), a block (the two users' call, match and shows part), and the last step every
ended session takes (out of its shows; a user's last session ends calls and the queue ticket).

The gateway owns the resumable sessions and hands their map here: a session ended here is no longer
resumable. The hub calls :meth:`Evictions.ban`, :meth:`Evictions.revoke` and :meth:`Evictions.block`
for the control API's ``sanctions`` messages; the gateway calls :meth:`Evictions.terminate` when a
``token.refresh`` meets a ban or a revocation, and :meth:`Evictions.end` when a resume window passes.
"""

from __future__ import annotations

import logging
from typing import Any

from matchmaker.types import TicketStore
from signaling.calls import CallBook
from signaling.hub import Hub
from signaling.session import Session
from signaling.shows import ShowBook
from switchboard.ids import UserId

log = logging.getLogger("switchboard.signaling")

UNAUTHORIZED = 4001
"""Close code: no token, or a bad, expired or revoked one."""
BANNED = 4003
"""Close code: the account is banned (at connect, or live when a moderator bans it); no resume."""
REVOKED = "token revoked: sign in again"


class Evictions:
    """Ends the sessions of one node's gateway from outside their sockets."""

    def __init__(self, hub: Hub, calls: CallBook, shows: ShowBook, tickets: TicketStore | None,
                 resumable: dict[str, Session]) -> None:
        self._hub = hub
        self._calls = calls
        self._shows = shows
        self._tickets = tickets
        self._resumable = resumable
        """The gateway's resumable sessions by resume token (its map, shared: an ended one leaves it)."""

    async def ban(self, user: UserId) -> None:
        """The control API banned ``user``: each of their sessions here gets an error frame and 4003,
        and ends now (no resume): it leaves its shows, calls end, the queue ticket goes."""
        for session in self._hub.sessions(user):
            await self.terminate(session, "banned", "this account is banned", BANNED)
        log.info("banned user's sessions ended", extra={"user": user})

    async def revoke(self, user: UserId) -> None:
        """The control API revoked ``user``'s tokens (``revoke``): each session here whose token was
        issued before the epoch gets an ``unauthorized`` error frame and 4001, and ends now (no
        resume), as on a ban. Sessions on a newer token (signed in again since) stay."""
        for session in self._hub.sessions(user):
            if await self._hub.refusal(user, session.grants.iat) is not None:
                await self.terminate(session, "unauthorized", REVOKED, UNAUTHORIZED)
        log.info("revoked user's sessions ended", extra={"user": user})

    async def block(self, blocker: UserId, blocked: UserId) -> None:
        """A block was made: a call or a match between the two ends now (every node tries; the
        state moves in Redis are atomic, so the parties are told once); in a show the two are kept
        apart, and the owner's blocked one leaves it."""
        await self._shows.block(blocker, blocked)  # first: local, no Redis round trip in its way
        await self._calls.part(blocker, blocked)
        if self._tickets is not None:
            await self._tickets.part(blocker, blocked)

    async def terminate(self, session: Session, code: str, text: str, close: int, ref: Any = None) -> None:
        """An error frame, then the socket closes with ``close`` and the session ends (no resume)."""
        if session.closed:
            return
        self._resumable.pop(session.resume_token, None)
        session.send({"type": "error", "code": code, "ref": ref, "message": text}, last=True)
        await session.drained()
        await session.close(close, code.encode())
        await self.end(session)

    async def end(self, session: Session) -> None:
        """A closed session's last step: out of its shows; a user's last one ends calls and tickets."""
        try:
            await self._shows.session_gone(session)
            await self._calls.session_gone(session)
            if await self._hub.remove(session):
                await self._calls.user_gone(session.user_id)
                if self._tickets is not None and not await self._calls.match_goes_on(session.user_id):
                    await self._tickets.leave(session.user_id)
        except Exception:
            log.exception("ending a session failed", extra={"session": session.id})
