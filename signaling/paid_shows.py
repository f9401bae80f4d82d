"""Paid shows on a node: which show session is live (for the API's ticket sales), the ticket door of
``show.join``, the end of a show for the API's refunds, and gifts relayed into the show's chat.

The node never touches Postgres: the API mirrors a room's ticket price into Redis
(:func:`switchboard.paid.room_price`); the node reads it when the show starts, so a show is paid or
free for its whole life. A viewer's room token carries a ``ticket`` grant naming the show session
it was bought for (signed by the API, which sells tickets only for the show live now).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis

from signaling.errors import PaymentRequired
from switchboard.ids import new_id
from switchboard.paid import BILLING_STREAM, LIVE_SHOW_TTL_S, BillingEntry, live_show, room_price
from switchboard.redis_client import text

if TYPE_CHECKING:
    from signaling.session import Session
    from signaling.show import Show

log = logging.getLogger("switchboard.signaling.shows")

TICKET_NEEDED = "this show is paid: buy a ticket (POST /api/rooms/{room}/ticket), then ask for a new room token"


class PaidShows:
    """Ticket doors and show lifecycle facts of one node."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis

    async def opened(self, show: Show) -> None:
        """A show starts: its session id, whether it is paid (the room's price now), and the live key."""
        show.show_id = new_id("sh_")
        show.started_ms = int(time.time() * 1000)
        try:
            raw = await self._redis.get(room_price(show.room))
            show.paid = raw is not None and int(raw) > 0
            await self._redis.hset(live_show(show.room), mapping={
                "show_id": show.show_id, "started_ms": show.started_ms, "paid": int(show.paid)})
            await self._redis.expire(live_show(show.room), LIVE_SHOW_TTL_S)
        except (aioredis.RedisError, ValueError) as exc:
            log.warning("a show's payment state could not be read or written", extra={"room": show.room,
                                                                                       "error": str(exc)})

    @staticmethod
    def admit(session: Session, show: Show) -> None:
        """``show.join`` of a paid show: the owner, moderators and holders of this show's ticket enter."""
        g = session.grants
        if not show.paid or session.user_id == show.owner or g.moderate or g.ticket == show.show_id:
            return
        raise PaymentRequired(TICKET_NEEDED.replace("{room}", show.room))

    async def closed(self, show: Show) -> None:
        """The show ended: its live key goes (if still its own) and the API hears of it (refunds)."""
        try:
            live = await self._redis.hget(live_show(show.room), "show_id")
            if live is not None and text(live) == show.show_id:
                await self._redis.delete(live_show(show.room))
            if show.paid:
                entry = BillingEntry("show_ended", room=show.room, show_id=show.show_id, started_ms=show.started_ms,
                                     ended_ms=int(time.time() * 1000))
                await self._redis.xadd(BILLING_STREAM, entry.encode())  # type: ignore[arg-type]
        except aioredis.RedisError as exc:
            log.warning("a show's end was not recorded (its tickets are not refunded)",
                        extra={"room": show.room, "error": str(exc)})

    @staticmethod
    def gift_frame(show: Show, message: dict[str, Any]) -> dict[str, Any] | None:
        """The ``show.gift`` frame for the show's members, from the API's message (None: not for it)."""
        amount, sender, gift_id = message.get("amount"), message.get("from"), message.get("id")
        if (isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0 or not isinstance(sender, str)
                or not isinstance(gift_id, str)):
            return None
        return {"type": "show.gift", "room": show.room, "id": gift_id, "from": sender, "amount": amount,
                "name": str(message.get("name") or "")[:64]}
