"""Tickets to paid shows: the ticket door of the room-token route, buying a ticket, and the refund of
every ticket of a show that ended too soon.

A ticket is for one show session (the ``show_id`` the node wrote in :func:`switchboard.paid.live_show`
when the show started): the ledger operation ``ticket:<room>:<show_id>:<viewer>`` pays it, so buying again
charges once and answers the ticket already held. A viewer's room token for a paid show carries the
``ticket`` grant; the node admits a viewer to a paid show only with the ticket of the show live now.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert

from control_api.errors import Conflict, NotFound, PaymentRequired
from control_api.graph import not_blocked
from control_api.http import Call, Reply, Route
from control_api.models import Room
from control_api.paid_models import Ticket
from control_api.payments.service import PAYMENTS, Payments
from control_api.prices import ROOM, mirror_room, room_ticket_price
from control_api.schema import Field, Schema
from switchboard.paid import live_show
from switchboard.redis_client import text
from switchboard.tokens import Grants

log = logging.getLogger("switchboard.api.tickets")


async def _live(call: Call, room: str) -> tuple[str, bool] | None:
    """(show_id, paid) of the show live in ``room`` now, or None."""
    live = await call.services.hot_redis.hgetall(live_show(room))
    if not live.get(b"show_id"):
        return None
    return text(live[b"show_id"]), live.get(b"paid") == b"1"


async def admit(call: Call, room: str, owner: uuid.UUID | None, role: str, grants: Grants) -> Grants:
    """The ticket door of ``POST /rooms/{room}/token`` (its one call): a broadcaster's token renews
    the room's price in Redis; a viewer of a paid show live now needs its ticket (402), which the
    token then carries. Other roles, owners and free shows pass unchanged."""
    me = call.me.user_id
    if role == "broadcaster":  # the grants were decided: only the room's owner broadcasts
        async with call.services.sessions() as session:
            price = await room_ticket_price(session, room, me)
        await mirror_room(call.services.redis, room, price)
        return grants
    if role != "viewer" or owner == me:
        return grants
    live = await _live(call, room)
    if live is None or not live[1]:
        return grants
    async with call.services.sessions() as session:
        ticket = await session.get(Ticket, (live[0], me))
    if ticket is None or ticket.refunded_at is not None:
        raise PaymentRequired(f"the show in {room!r} is paid: buy a ticket first (POST /api/rooms/{room}/ticket)")
    return dataclasses.replace(grants, ticket=live[0])


def _ticket(t: Ticket, replayed: bool) -> dict[str, Any]:
    return {"room": t.room, "show_id": t.show_id, "price": t.price, "replayed": replayed,
            "refunded": t.refunded_at is not None}


async def _buy(call: Call) -> Reply:
    me, name = call.me.user_id, call.params["room"]
    payments: Payments = call.request.config_dict[PAYMENTS]
    async with call.services.sessions() as session:
        room = await session.get(Room, name)
        if room is None or (room.owner_id != me and not await session.scalar(select(not_blocked(me, room.owner_id)))):
            raise NotFound("no such room")
        price = await room_ticket_price(session, name, room.owner_id)
    if room.owner_id == me:
        raise Conflict("this is your own room: owners need no ticket")
    live = await _live(call, name)
    if live is None:
        raise Conflict("no show is live in this room: tickets are sold for the show on now")
    show_id, paid = live
    if not paid:
        raise Conflict("the show on now is free: no ticket needed")
    async with call.services.sessions() as session:
        held = await session.get(Ticket, (show_id, me))
    if held is not None:
        return Reply(_ticket(held, True))  # a second purchase charges nothing
    spend_id = f"ticket:{name}:{show_id}:{me}"  # viewer, room, show session: a second purchase charges once
    if price:
        await payments.spend_on(spend_id, me, room.owner_id, price, kind="ticket",
                                meta={"room": name, "show_id": show_id})
    async with call.services.sessions() as session, session.begin():
        await session.execute(insert(Ticket).values(show_id=show_id, viewer_id=me, room=name, price=price,
                                                    spend_id=spend_id if price else None).on_conflict_do_nothing())
        ticket = await session.get(Ticket, (show_id, me))
    assert ticket is not None
    return Reply(_ticket(ticket, False), 201)


async def refund_show(payments: Payments, show_id: str, started_ms: int, ended_ms: int, window_s: int) -> int:
    """Gives back every ticket of a show that ended within ``window_s`` of its start (each once:
    the reversal's id names the ticket). Returns how many were refunded now."""
    if ended_ms - started_ms >= window_s * 1000:
        return 0
    async with payments.sessions() as session:
        tickets = (await session.scalars(select(Ticket).where(Ticket.show_id == show_id,
                                                              Ticket.refunded_at.is_(None)))).all()
    done = 0
    for t in tickets:
        if t.spend_id:
            await payments.ledger.reverse_spend(f"ticket-refund:{show_id}:{t.viewer_id}", t.spend_id,
                                                kind="ticket_refund", meta={"room": t.room, "show_id": show_id})
        async with payments.sessions() as session, session.begin():
            await session.execute(update(Ticket).where(Ticket.show_id == show_id, Ticket.viewer_id == t.viewer_id)
                                  .values(refunded_at=datetime.now(UTC)))
        if t.spend_id:
            await payments.notify(t.viewer_id, {"type": "wallet", "reason": "ticket_refund", "credits": t.price})
        done += 1
    return done


def routes() -> list[Route]:
    return [
        Route("POST", "/rooms/{room}/ticket", _buy,
              "Buy a ticket to the paid show live in a room (once: a second purchase returns the first)",
              "paid live", params=Schema({"room": Field("string", pattern=ROOM)}), ok=201, repeat=200),
    ]
