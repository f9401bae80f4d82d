"""Tokens that open a node: a room token with grants (broadcaster, viewer, or hidden for moderators,
each hidden issue written to the audit log) and a socket token for ``/ws``.

The ordinary grants need no Postgres: the access token already names the caller. A hidden grant
re-reads the caller's role and writes the audit entry before the token is returned.
"""

from __future__ import annotations

import dataclasses
import time
import uuid

from control_api import notifications
from control_api.errors import Forbidden, Unauthenticated, ValidationFailed
from control_api.graph import visible_account
from control_api.http import Call, Reply, Route
from control_api.models import Account, AuditEntry
from control_api.sanctions import active_ban, is_banned_live, require_staff
from control_api.schema import Field, Schema
from switchboard.ids import RoomId, UserId
from switchboard.tokens import Grants

ROLES = ("broadcaster", "viewer", "hidden")
ROOM = r"[A-Za-z0-9_-]{1,64}"


def grants_for(user: str, room: str, role: str) -> Grants:
    """The grants of ``role`` in ``room`` (pure; tested alone)."""
    sub, rid = UserId(user), RoomId(room)
    if role == "broadcaster":
        return Grants(sub=sub, room=rid, publish=True, subscribe=True)
    if role == "viewer":
        return Grants(sub=sub, room=rid, subscribe=True)
    if role == "hidden":
        return Grants(sub=sub, room=rid, subscribe=True, hidden=True, moderate=True)
    raise ValueError(f"unknown room role {role!r}")


def _answer(token: str, grants: Grants, ttl_s: int) -> dict[str, object]:
    return {
        "token": token,
        "expires_at": int(time.time()) + ttl_s,
        "grants": {"room": grants.room, "publish": grants.publish, "subscribe": grants.subscribe,
                   "hidden": grants.hidden, "moderate": grants.moderate, "premium": grants.premium},
    }


async def _room_token(call: Call) -> Reply:
    services, me = call.services, call.me
    role = call.body.get("role", "viewer")
    if await is_banned_live(services.redis, me.user_id):  # the access token may predate the ban
        raise Forbidden("this account is banned")
    grants = grants_for(str(me.user_id), call.params["room"], role)
    if grants.hidden:
        # The jti is chosen here so the audit entry names this very token.
        grants = dataclasses.replace(grants, jti=uuid.uuid4().hex)
        async with services.sessions() as session, session.begin():
            staff = await require_staff(session, me.user_id)
            session.add(AuditEntry(actor_id=staff.id, action="token.hidden", subject=grants.room or "",
                                   detail={"jti": grants.jti, "room": grants.room}))
    return Reply(_answer(services.signer.sign(grants), grants, services.room_ttl_s))


async def _ws_token(call: Call) -> Reply:
    # Premium is read from the account now, not from the access token (which may predate a
    # purchase or a lapse by up to its lifetime): the node's matchmaker trusts this claim alone.
    async with call.services.sessions() as session:
        account = await session.get(Account, call.me.user_id)
        if account is not None and await active_ban(session, account.id):
            raise Forbidden("this account is banned")
    if account is None:
        raise Unauthenticated("the account no longer exists")
    grants = Grants(sub=UserId(str(call.me.user_id)), premium=account.premium)
    return Reply(_answer(call.services.signer.sign(grants), grants, call.services.room_ttl_s))


async def _invite(call: Call) -> Reply:
    me, other = call.me.user_id, call.params["user_id"]
    if other == me:
        raise ValidationFailed({"user_id": "must be another user"})
    async with call.services.sessions() as session, session.begin():
        await visible_account(session, me, other)
        note = notifications.add(session, other, "live_invite", {"from": str(me), "room": call.body["room"]})
    await notifications.push(call.services.realtime, [note])
    return Reply({"user_id": str(other), "room": call.body["room"], "notification_id": note.id}, 201)


def routes() -> list[Route]:
    return [
        Route("POST", "/rooms/{room}/token", _room_token,
              "A room token: broadcaster, viewer, or hidden (moderators only, audited)", "tokens",
              params=Schema({"room": Field("string", pattern=ROOM)}),
              body=Schema({"role": Field("string", required=False, choices=ROLES)})),
        Route("POST", "/ws-token", _ws_token, "A short-lived token for the node's /ws socket", "tokens"),
        Route("POST", "/users/{user_id}/invite", _invite, "Invite a user to my live room (a notification)", "tokens",
              params=Schema({"user_id": Field("uuid")}), body=Schema({"room": Field("string", pattern=ROOM)}),
              ok=201, idempotent=True),
    ]
