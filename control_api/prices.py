"""Creators' prices: the default ticket of their rooms, a room's own ticket price, and the price per
minute of a 1:1 call to them. Postgres holds them; Redis holds what nodes must know
(:func:`switchboard.paid.room_price`, :func:`switchboard.paid.call_price`), written on every change
and again whenever the owner asks for a broadcaster token (so a flushed Redis heals itself).

A price change during a show or a call changes nothing already bought: a show stays paid or free as
it started, tickets already sold keep their price, a call keeps the price of its first minute.
"""

from __future__ import annotations

import uuid
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from control_api.errors import NotFound
from control_api.graph import not_blocked
from control_api.http import Call, Reply, Route
from control_api.models import Room
from control_api.paid_models import CreatorPrice, RoomPrice
from control_api.schema import Field, Schema
from switchboard.paid import call_price, live_show, room_price

ROOM = r"[A-Za-z0-9_-]{1,64}"
MAX_PRICE = 1_000_000
"""Highest ticket or per-minute price (credits): far above any sensible price, inside a 32-bit column."""


async def room_ticket_price(session: AsyncSession, room: str, owner: uuid.UUID) -> int:
    """The room's own price, else its owner's default, else 0."""
    own = await session.scalar(select(RoomPrice.price).where(RoomPrice.room == room))
    if own is not None:
        return int(own)
    default = await session.scalar(select(CreatorPrice.ticket_price).where(CreatorPrice.account_id == owner))
    return int(default or 0)


async def mirror_room(redis: Redis, room: str, price: int) -> None:
    await redis.set(room_price(room), price)


async def _mine(session: AsyncSession, me: uuid.UUID) -> dict[str, int]:
    row = await session.get(CreatorPrice, me)
    return {"ticket_price": row.ticket_price if row else 0, "call_price": row.call_price if row else 0}


async def _get_prices(call: Call) -> Reply:
    async with call.services.sessions() as session:
        return Reply(await _mine(session, call.me.user_id))


async def _put_prices(call: Call) -> Reply:
    me, body = call.me.user_id, call.body
    async with call.services.sessions() as session, session.begin():
        now = await _mine(session, me)
        values: dict[str, Any] = {**now, **{k: body[k] for k in ("ticket_price", "call_price") if k in body}}
        stmt = insert(CreatorPrice).values(account_id=me, **values)
        await session.execute(stmt.on_conflict_do_update(index_elements=[CreatorPrice.account_id], set_=values))
        rooms = (await session.scalars(select(Room.name).where(Room.owner_id == me))).all()
        prices = {name: await room_ticket_price(session, name, me) for name in rooms}
    redis = call.services.redis
    await redis.set(call_price(str(me)), values["call_price"])
    for name, price in prices.items():
        await mirror_room(redis, name, price)
    return Reply(values)


async def _put_room_price(call: Call) -> Reply:
    me, name, price = call.me.user_id, call.params["room"], call.body["price"]
    async with call.services.sessions() as session, session.begin():
        room = await session.get(Room, name)
        if room is None or room.owner_id != me:
            raise NotFound(f"you own no room {name!r}")
        stmt = insert(RoomPrice).values(room=name, price=price)
        await session.execute(stmt.on_conflict_do_update(index_elements=[RoomPrice.room], set_={"price": price}))
    await mirror_room(call.services.redis, name, price)
    return Reply({"room": name, "price": price})


async def _get_room_price(call: Call) -> Reply:
    name = call.params["room"]
    async with call.services.sessions() as session:
        room = await session.get(Room, name)
        me = call.me.user_id
        if room is None or (room.owner_id != me and not await session.scalar(select(not_blocked(me, room.owner_id)))):
            raise NotFound("no such room")
        price = await room_ticket_price(session, name, room.owner_id)
    live = await call.services.redis.hgetall(live_show(name))
    show_id = live.get(b"show_id")
    return Reply({"room": name, "price": price, "live": show_id is not None,
                  "paid_show": live.get(b"paid") == b"1"})


def routes() -> list[Route]:
    price = Field("integer", minimum=0, maximum=MAX_PRICE)
    room = Schema({"room": Field("string", pattern=ROOM)})
    return [
        Route("GET", "/me/prices", _get_prices, "My prices as a creator: default ticket, call per minute", "paid live"),
        Route("PUT", "/me/prices", _put_prices, "Set my default ticket price and my price per call minute (0: free)",
              "paid live", body=Schema({"ticket_price": Field("integer", required=False, minimum=0,
                                                              maximum=MAX_PRICE),
                                        "call_price": Field("integer", required=False, minimum=0,
                                                            maximum=MAX_PRICE)})),
        Route("GET", "/rooms/{room}/price", _get_room_price, "A room's ticket price and whether a paid show is live",
              "paid live", params=room),
        Route("PUT", "/rooms/{room}/price", _put_room_price, "Set my room's ticket price (0: free; new tickets only)",
              "paid live", params=room, body=Schema({"price": price})),
    ]
