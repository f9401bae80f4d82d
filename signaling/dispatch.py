"""From a validated message to its handler, and from any error to its wire code (this is the edge).

:data:`SERVER_TYPES` lists what the server sends on its own; with ``Dispatcher.types`` it is what
docs/protocol.md must document.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from matchmaker.errors import MatchmakerError, NotQueued
from matchmaker.types import TicketStore
from sfu.errors import Busy, NegotiationError, SfuError, UnknownPeer, UnknownRoom, WorkerUnavailable
from signaling.calls import RELAYED, CallBook
from signaling.clips import ClipDesk
from signaling.errors import Conflict, Forbidden, SignalingError, Unavailable
from signaling.hub import Hub
from signaling.messages import Message
from signaling.presence_watch import PresenceWatch
from signaling.session import Session
from signaling.shows import ShowBook
from switchboard.errors import TokenError
from switchboard.wire import WireError

Handler = Callable[[Session, Mapping[str, Any]], Awaitable[dict[str, Any]]]

SERVER_TYPES = (
    "hello", "reply", "error", "presence.changed",
    "call.incoming", "call.ringing", "call.accepted", "call.ended", "call.rejoined", "call.sfu_offer",
    "call.sfu_closed",
    "match.found", "match.ended",
    "show.roster", "show.chat", "show.offer", "show.ended", "show.peer_closed",
    "show.media_stopped", "show.chat_deleted", "show.chat_pinned", "show.muted", "show.kicked", "show.gift",
    "moderation.muted", "moderation.unmuted", "moderation.warning", "reconnect",
)
"""Messages the server sends that are not replies (relayed ``call.*`` types are documented with their request)."""

VERIFIED_ONLY = frozenset({"call.invite", "call.accept", "call.publish", "queue.join", "show.create", "show.publish",
                           "show.chat", *RELAYED})
"""Doors closed to a token without ``verified`` (an account whose email is not verified): calling,
matching, publishing, and anything relayed to another person. Watching stays open."""
MUTED_TYPES = frozenset({"show.chat", "call.chat"})
"""What a user muted by a moderator may not send (checked against the node's mute table: no I/O)."""
UNVERIFIED = "verify your email address first: unverified accounts may watch but not call, match, publish or chat"


def wire_error(exc: Exception) -> tuple[str, str]:
    """``(code, message)`` for an error frame. Unknown exceptions become ``internal`` without details."""
    if isinstance(exc, SignalingError | WireError):
        return exc.code, exc.message
    if isinstance(exc, TokenError):
        return "unauthorized", str(exc)
    if isinstance(exc, NotQueued):
        return "not_queued", str(exc)
    if isinstance(exc, MatchmakerError):
        return "bad_ticket", str(exc)
    if isinstance(exc, UnknownRoom | UnknownPeer):
        return "not_found", str(exc) or "no such room or peer in the SFU"
    if isinstance(exc, NegotiationError):
        return "negotiation_failed", str(exc)
    if isinstance(exc, Busy):
        return "unavailable", "the media worker is pacing joins; try again after retry_after seconds"
    if isinstance(exc, WorkerUnavailable):
        return "unavailable", "the media worker is unavailable; try again"
    if isinstance(exc, SfuError):
        return "media_error", str(exc)
    return "internal", "internal error (logged)"


def is_shed(exc: Exception) -> bool:
    """The node refused for its own load, not for anything the client did: the error frame carries
    ``retry_after`` and the refusal does not count toward the socket's abuse limit."""
    return isinstance(exc, WorkerUnavailable)


class Dispatcher:
    """The table of message types to handlers; one per node."""

    def __init__(self, hub: Hub, calls: CallBook, shows: ShowBook, tickets: TicketStore | None,
                 watch: PresenceWatch, clips: ClipDesk | None = None) -> None:
        self._hub = hub
        self._calls = calls
        self._tickets = tickets
        table: dict[str, Handler] = {
            "ping": self._ping,
            "presence.query": self._presence,
            "presence.watch": watch.watch,
            "call.invite": calls.invite,
            "call.accept": calls.accept,
            "call.decline": calls.decline,
            "call.cancel": calls.cancel,
            "call.hangup": calls.hangup,
            "call.rejoin": calls.rejoin,
            "call.publish": calls.media.publish,
            "call.subscribe": calls.media.subscribe,
            "call.sfu_answer": calls.media.answer,
            "call.sfu_ice": calls.media.ice,
            "call.list": calls.media.list_calls,
            "call.tap": calls.media.tap,
            "call.untap": calls.media.untap,
            "queue.join": self._queue_join,
            "queue.leave": self._queue_leave,
            "queue.next": self._queue_next,
            "show.create": shows.create,
            "show.join": shows.join,
            "show.leave": shows.leave,
            "show.end": shows.end,
            "show.roster": shows.roster,
            "show.list": shows.list_shows,
            "show.publish": shows.doors.publish,
            "show.subscribe": shows.doors.subscribe,
            "show.answer": shows.doors.answer,
            "show.ice": shows.doors.ice,
            "show.chat": shows.talk.chat,
            "show.chat_delete": shows.moderation.delete,
            "show.chat_pin": shows.moderation.pin,
            "show.mute": shows.moderation.mute,
            "show.kick": shows.moderation.kick,
            "show.stats": shows.links.stats,
            "show.layers": shows.links.layers,
        }
        if clips is not None:
            table["clip.save"] = clips.save
        for kind in RELAYED:
            table[kind] = self._relay(calls, kind)
        self._table = table

    @property
    def types(self) -> frozenset[str]:
        """Every client message type with a handler (``auth`` and ``token.refresh`` are handled by
        the socket itself: they concern the socket's token, not the session's business)."""
        return frozenset(self._table) | {"auth", "token.refresh"}

    async def handle(self, session: Session, message: Message) -> dict[str, Any]:
        handler = self._table.get(message.type)
        if handler is None:  # "auth" after authentication (the socket answers "token.refresh")
            raise Conflict("already authenticated")
        if message.type in VERIFIED_ONLY and not session.grants.verified:
            raise Forbidden(UNVERIFIED)
        if message.type in MUTED_TYPES:
            self._hub.mutes.check(session.user_id)
        return await handler(session, message.body)

    @staticmethod
    def _relay(calls: CallBook, kind: str) -> Handler:
        async def relay(session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
            return await calls.relay(session, kind, body)

        return relay

    async def _ping(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        return {"pong": True}

    async def _presence(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        """Online or offline for friends (an accepted follow either way, no block); everyone else is
        always ``offline``, so a stranger or a blocked user cannot tell hidden from away."""
        users = body["users"]
        visible = await self._calls.relations.visible(session.user_id, users)
        online = await self._hub.query(visible) if visible else {}
        return {"presence": {u: "online" if online.get(u) else "offline" for u in users}}

    def _store(self) -> TicketStore:
        if self._tickets is None:
            raise Unavailable("random chat is not available on this node")
        return self._tickets

    async def _queue_join(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        # Premium comes from the token the control API signed (the account's flag), never from the client.
        result = await self._store().join(session.user_id, session.grants.premium, body["ticket"])
        return {"queued": True, "ignored_filters": list(result.ignored_filters)}

    async def _queue_leave(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        store = self._store()
        await self._calls.media.user_left(session.user_id, "match")  # first: a new match may follow at once
        return {"left": await store.leave(session.user_id)}

    async def _queue_next(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        store = self._store()
        await self._calls.media.user_left(session.user_id, "match")  # first: the next match.found may be quick
        outcome = await store.next(session.user_id)
        return {"outcome": outcome.value}
