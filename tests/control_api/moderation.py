"""Helpers for the moderation tests: make a moderator, read the audit log straight from Postgres, and
the live sessions a report may name, made by the realtime planes' own writers on the test's Redis (the
matchmaker's store and claim scripts, the node's room-events writer)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from control_api.models import Account, AuditEntry, Role, Room
from control_api.services import SERVICES, Services
from matchmaker.claims import Claimer, ClaimStatus, Proposal
from matchmaker.store import RedisTicketStore, now_us
from signaling.room_events import RoomEvents
from switchboard.ids import SessionId, UserId
from tests.control_api.conftest import Api, User


def services(api: Api) -> Services:
    return api.app._subapps[0][SERVICES]  # type: ignore[attr-defined, no-any-return]


async def make_staff(api: Api, user: User, role: Role = Role.MODERATOR) -> User:
    """Gives ``user`` a staff role in Postgres (their access token still says ``user``: the API must
    re-read the role)."""
    async with services(api).sessions() as session, session.begin():
        account = await session.get(Account, uuid.UUID(user.id))
        assert account is not None
        account.role = role
    return user


async def audit_rows(api: Api, **where: Any) -> list[AuditEntry]:
    async with services(api).sessions() as session:
        stmt = select(AuditEntry).order_by(AuditEntry.id)
        for key, value in where.items():
            stmt = stmt.where(getattr(AuditEntry, key) == value)
        return list(await session.scalars(stmt))


async def paired(redis: Any, a: User, b: User, session_id: str | None = None) -> str:
    """A random-chat match of ``a`` and ``b`` as the matchmaker makes it (tickets joined, one claim):
    its ``session_id`` (a new one, or the one given). Joining ends a user's previous pair, as it does
    for a real user."""
    store = RedisTicketStore(redis, 60)
    tickets = [(await store.join(UserId(u.id), False, {"country": "FR", "age": 30})).ticket for u in (a, b)]
    proposal = Claimer.propose(*tickets)
    if session_id is not None:
        proposal = Proposal(proposal.a, proposal.b, SessionId(session_id))
    assert await Claimer(redis, 0, 600).claim([proposal], now_us()) == [ClaimStatus.OK]
    return str(proposal.session_id)


async def watched(api: Api, redis: Any, owner: User, *viewers: User, name: str | None = None) -> str:
    """A show room of ``owner`` (made through the API, or with the fixed ``name`` a test's media
    carries) that each of ``viewers`` joined, as a node records visible members: its name."""
    if name is None:
        status, made = await api.call("POST", "/rooms", owner, json={})
        assert status == 201, made
        name = str(made["room"])
    else:
        async with services(api).sessions() as session, session.begin():
            session.add(Room(name=name, owner_id=uuid.UUID(owner.id)))
    node = RoomEvents(redis)
    for viewer in viewers:
        await node.joined(name, viewer.id, f"peer-{viewer.id}")
    return name
