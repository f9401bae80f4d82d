"""Gifts in shows: a viewer sends credits to the broadcaster during a show; everyone in the show sees
it in the show's chat.

The spend is ``gift:<sender>:<client id>`` (the client's idempotency key: a retry charges once and is
announced once). The API publishes ``show.gift`` on the owner's user channel; the node that holds
the show (the owner's) relays it to every member as a ``show.gift`` frame (docs/protocol.md).
"""

from __future__ import annotations

from sqlalchemy import select

from control_api.errors import Conflict, NotFound, ValidationFailed
from control_api.graph import not_blocked
from control_api.http import Call, Reply, Route
from control_api.ledger.types import MAX_AMOUNT
from control_api.models import Room
from control_api.payments.routes import OP_ID
from control_api.payments.service import PAYMENTS, Payments
from control_api.prices import ROOM
from control_api.schema import Field, Schema
from control_api.social_models import Profile
from switchboard.paid import GIFT, live_show
from switchboard.redis_client import text


async def _send_gift(call: Call) -> Reply:
    me, name, body = call.me.user_id, call.params["room"], call.body
    payments: Payments = call.request.config_dict[PAYMENTS]
    amount = body["amount"]
    if amount > payments.settings.gift_max:
        raise ValidationFailed({"amount": f"must be at most {payments.settings.gift_max}"})
    async with call.services.sessions() as session:
        room = await session.get(Room, name)
        if room is None or (room.owner_id != me and not await session.scalar(select(not_blocked(me, room.owner_id)))):
            raise NotFound("no such room")
        pseudo = await session.scalar(select(Profile.pseudo).where(Profile.account_id == me))
    if room.owner_id == me:
        raise ValidationFailed({"room": "gifts go to the broadcaster: not to your own room"})
    show_id = await call.services.redis.hget(live_show(name), "show_id")
    if show_id is None:
        raise Conflict("no show is live in this room: gifts are sent during a show")
    spend = await payments.spend_on(f"gift:{me}:{body['id']}", me, room.owner_id, amount, kind="gift",
                                    meta={"room": name, "show_id": text(show_id)})
    if not spend.replayed:
        await call.services.realtime.push(room.owner_id, {"type": GIFT, "room": name, "id": body["id"],
                                                          "from": str(me), "name": pseudo or "", "amount": amount})
    return Reply({"id": body["id"], "room": name, "amount": spend.amount, "creator_amount": spend.creator_amount,
                  "replayed": spend.replayed}, 200 if spend.replayed else 201)


def routes() -> list[Route]:
    return [
        Route("POST", "/rooms/{room}/gifts", _send_gift,
              "Send a gift (credits) to the broadcaster of the show live in a room; the show's chat shows it",
              "paid live", params=Schema({"room": Field("string", pattern=ROOM)}),
              body=Schema({"id": Field("string", pattern=OP_ID, description="my idempotency key for this gift"),
                           "amount": Field("integer", minimum=1, maximum=MAX_AMOUNT)}), ok=201, repeat=200),
    ]
