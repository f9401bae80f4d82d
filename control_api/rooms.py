"""Rooms and the tokens that open a node.

A room is owned: ``POST /api/rooms`` names it on the server (``show-`` + 128 random bits, so a name
can be neither guessed nor taken first) and records the caller as its owner. Only the owner gets a
broadcaster token (the ``publish`` grant) for it, and only once their email is verified; anyone may
get a viewer token for a room that exists. A hidden grant (moderators) re-reads the caller's role
and writes the audit entry before the token is returned. Every token carries ``premium`` and
``verified`` as the account record says now (within the read cache's second or two, premium from its
Redis mark when there is one), not as the access token said when it was issued. Who gets which
grants is decided in one pure function, :func:`decide_grants`.
"""

from __future__ import annotations

import base64
import dataclasses
import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_api import notifications, tickets
from control_api.cache import READ_CACHE, AccountFacts
from control_api.errors import Forbidden, NotFound, Unauthenticated, ValidationFailed
from control_api.graph import not_blocked, visible_account
from control_api.http import Call, Reply, Route
from control_api.models import Account, AuditEntry, Room
from control_api.placed import placed
from control_api.sanctions import is_banned_live, require_staff
from control_api.schema import Field, Schema
from control_api.services import Caller
from switchboard.ids import RoomId, UserId
from switchboard.tokens import Grants

ROLES = ("broadcaster", "viewer", "hidden")
KINDS = ("show",)
ROOM = r"[A-Za-z0-9_-]{1,64}"
NODE = r"node_[A-Za-z0-9_-]{1,64}"
"""A node id (``hello.node``), as a client names the node it lost (``avoid``)."""
TITLE = r"[^\x00-\x1f\x7f\ud800-\udfff]{0,100}"
"""Printable text: no control characters, no lone surrogates (Postgres cannot store those)."""
NAME_BITS = 128
UNVERIFIED = "verify your email first: unverified accounts may watch but not broadcast"


def new_room_name(kind: str = "show") -> str:
    """``show-`` + 128 random bits in lowercase base32 (26 characters): unguessable, never chosen by a client."""
    raw = base64.b32encode(secrets.token_bytes(NAME_BITS // 8)).decode().rstrip("=").lower()
    return f"{kind}-{raw}"


def grants_for(user: str, room: str, role: str, *, verified: bool = False, premium: bool = False) -> Grants:
    """The grants of ``role`` in ``room`` (pure; tested alone). Who may hold which role is decided
    by the caller: broadcaster for the room's verified owner, hidden for staff."""
    sub, rid = UserId(user), RoomId(room)
    if role == "broadcaster":
        return Grants(sub=sub, room=rid, publish=True, subscribe=True, verified=verified, premium=premium)
    if role == "viewer":
        return Grants(sub=sub, room=rid, subscribe=True, verified=verified, premium=premium)
    if role == "hidden":
        return Grants(sub=sub, room=rid, subscribe=True, hidden=True, moderate=True, verified=verified, premium=premium)
    raise ValueError(f"unknown room role {role!r}")


def _sign(call: Call, grants: Grants) -> str:
    """Signs ``grants`` issued no earlier than the caller's access token: a token minted in the very
    second of a revocation (by a request whose access token is already the new one) stays above the
    account's epoch on the node, as that access token is on the API."""
    return call.services.signer.sign(grants, now=max(time.time(), call.me.iat))


def _answer(token: str, grants: Grants, ttl_s: int, traceparent: str | None = None) -> dict[str, object]:
    """``traceparent`` (tracing on): the request's span, for the client to pass on in ``show.join``."""
    return {**({"traceparent": traceparent} if traceparent else {}),
        "token": token,
        "expires_at": int(time.time()) + ttl_s,
        "grants": {"room": grants.room, "publish": grants.publish, "subscribe": grants.subscribe,
                   "hidden": grants.hidden, "moderate": grants.moderate, "premium": grants.premium,
                   "verified": grants.verified},
    }


def _room(room: Room) -> dict[str, Any]:
    return {"room": room.name, "owner": str(room.owner_id), "kind": room.kind, "title": room.title,
            "created_at": room.created_at.isoformat(), "watch_path": f"/watch/{room.name}"}


async def _live_account(session: AsyncSession, user: uuid.UUID) -> Account:
    account = await session.get(Account, user)
    if account is None or account.deleted_at is not None:
        raise Unauthenticated("the account no longer exists")
    return account


# --- rooms -------------------------------------------------------------------------------------------


async def _create_room(call: Call) -> Reply:
    me = call.me.user_id
    if await is_banned_live(call.services.redis, me):
        raise Forbidden("this account is banned")
    async with call.services.sessions() as session, session.begin():
        account = await _live_account(session, me)
        if not account.email_verified:
            raise Forbidden(UNVERIFIED)
        kind = call.body.get("kind", "show")
        room = Room(name=new_room_name(kind), owner_id=me, kind=kind, title=call.body.get("title", ""),
                    created_at=datetime.now(UTC))
        session.add(room)
    return Reply(_room(room), 201)


async def _get_room(call: Call) -> Reply:
    me = call.me.user_id
    async with call.services.sessions() as session:
        room = await session.get(Room, call.params["room"])
        if room is None or await _hidden_from(session, me, room):
            raise NotFound("no such room")
        return Reply(_room(room))


async def _hidden_from(session: AsyncSession, me: uuid.UUID, room: Room) -> bool:
    """A room is not found by someone its owner blocked, or who blocked its owner."""
    return me != room.owner_id and not await session.scalar(select(not_blocked(me, room.owner_id)))


# --- tokens ------------------------------------------------------------------------------------------


async def _room_token(call: Call) -> Reply:
    # The access token's epoch and the ban mark were checked on the way in (AccessTokens.authenticate).
    me, role, name = call.me, call.body.get("role", "viewer"), call.params["room"]
    if role == "hidden":
        return await _hidden_token(call, name)
    cache = call.request.config_dict[READ_CACHE]
    # A broadcaster's account is read fresh: a verification lost or regained this moment counts.
    account = await cache.account(me.user_id, fresh=role == "broadcaster")
    owner = await cache.room_owner(name) if account is not None else None
    grants = await tickets.admit(call, name, owner, role, decide_grants(me, name, role, account, owner))
    return Reply(_answer(_sign(call, grants), grants, call.services.room_ttl_s, call.services.tracing.traceparent()))


def decide_grants(me: Caller, name: str, role: str, account: AccountFacts | None, owner: uuid.UUID | None) -> Grants:
    """The one place a room token's grants are decided (pure): who may have ``role`` in room
    ``name`` owned by ``owner`` (None: no such room), given the caller's account facts. Raises the
    refusal."""
    if account is None or account.deleted:
        raise Unauthenticated("the account no longer exists")
    if account.banned:
        raise Forbidden("this account is banned")
    if owner is None or (owner != me.user_id and owner in account.blocks):
        raise NotFound(f"no room {name!r}: create one with POST /api/rooms")
    if role == "broadcaster":
        if owner != me.user_id:
            raise Forbidden("only the room's owner may broadcast in it")
        if not account.verified:
            raise Forbidden(UNVERIFIED)
    return grants_for(str(me.user_id), name, role, verified=account.verified, premium=_premium(me, account))


def _premium(me: Caller, account: AccountFacts) -> bool:
    """The tier as Redis marks it on this request, else as Postgres said (at most a TTL ago)."""
    return account.premium if me.premium_now is None else me.premium_now


async def _hidden_token(call: Call, name: str) -> Reply:
    """Moderators, any room name (a call's, or the console's ``moderation``): audited."""
    services = call.services
    async with services.sessions() as session, session.begin():
        staff = await require_staff(session, call.me.user_id)
        # The jti is chosen here so the audit entry names this very token.
        grants = dataclasses.replace(
            grants_for(str(staff.id), name, "hidden", verified=staff.email_verified, premium=staff.premium),
            jti=uuid.uuid4().hex)
        session.add(AuditEntry(actor_id=staff.id, action="token.hidden", subject=grants.room or "",
                               detail={"jti": grants.jti, "room": grants.room}))
    return Reply(_answer(_sign(call, grants), grants, services.room_ttl_s, services.tracing.traceparent()))


async def _ws_token(call: Call) -> Reply:
    # Premium and verified are read from the account now (within the cache's TTL; premium from its
    # Redis mark when it has one), not from the access token (which may predate a purchase, a lapse or
    # a verification by up to its lifetime): nodes trust these claims alone.
    me = call.me
    account = await call.request.config_dict[READ_CACHE].account(me.user_id)
    if account is not None and account.banned:
        raise Forbidden("this account is banned")
    if account is None or account.deleted:
        raise Unauthenticated("the account no longer exists")
    grants = Grants(sub=UserId(str(me.user_id)), premium=_premium(me, account), verified=account.verified)
    return Reply(_answer(_sign(call, grants), grants, call.services.room_ttl_s))


async def _invite(call: Call) -> Reply:
    me, other, name = call.me.user_id, call.params["user_id"], call.body["room"]
    if other == me:
        raise ValidationFailed({"user_id": "must be another user"})
    async with call.services.sessions() as session, session.begin():
        room = await session.get(Room, name)
        if room is None or room.owner_id != me:
            raise NotFound(f"you own no room {name!r}")
        await visible_account(session, me, other)
        note = notifications.add(session, other, "live_invite", {"from": str(me), "room": name})
    await notifications.push(call.services.realtime, [note])
    return Reply({"user_id": str(other), "room": name, "notification_id": note.id}, 201)


def routes() -> list[Route]:
    room = Schema({"room": Field("string", pattern=ROOM)})
    avoid = Field("string", required=False, pattern=NODE,
                  description="The node the client just lost (its last hello's node): not placed there again")
    return [
        Route("POST", "/rooms", _create_room,
              "A new room owned by me, named by the server (verified accounts)", "rooms",
              body=Schema({"title": Field("string", required=False, pattern=TITLE,
                                          description="Shown to viewers; never part of the name"),
                           "kind": Field("string", required=False, choices=KINDS)}),
              ok=201, idempotent=True),
        Route("GET", "/rooms/{room}", _get_room, "A room: its owner, kind and title", "rooms", params=room),
        Route("POST", "/rooms/{room}/token", placed(_room_token),
              "A room token: broadcaster (the owner), viewer, or hidden (moderators only, audited)", "tokens",
              params=room, body=Schema({"role": Field("string", required=False, choices=ROLES), "avoid": avoid})),
        Route("POST", "/ws-token", placed(_ws_token), "A short-lived token for the node's /ws socket", "tokens",
              body=Schema({"avoid": avoid})),
        Route("POST", "/users/{user_id}/invite", _invite, "Invite a user to my live room (a notification)", "tokens",
              params=Schema({"user_id": Field("uuid")}), body=Schema({"room": Field("string", pattern=ROOM)}),
              ok=201, idempotent=True),
    ]
