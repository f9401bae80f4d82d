"""Paid shows and gifts through the real API and a real node: the ticket door of the room-token
route and of ``show.join``, one charge per ticket, a price change during a show, gifts seen by the
whole show, and the refund of every ticket when the show ends too soon."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from control_api.ledger.audit import check_ledger
from control_api.ledger.types import Kind
from tests.paid.conftest import Live, LiveFactory
from tests.signaling.conftest import Peer

PRICE = 25


async def until(probe: Any, within_s: float = 20.0) -> None:
    deadline = time.monotonic() + within_s
    while not await probe():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.1)


async def paid_show(live: Live, price: int = PRICE) -> tuple[Any, str, Peer]:
    owner = await live.api.user("host")
    status, room = await live.api.call("POST", "/rooms", owner, json={"title": "paid"})
    assert status == 201, room
    name = room["room"]
    status, body = await live.api.call("PUT", f"/rooms/{name}/price", owner, json={"price": price})
    assert status == 200, body
    status, token = await live.room_token(owner, name, "broadcaster")
    assert status == 200, token
    host = await live.node.connect(token["token"])
    created = await host.ok("show.create", room=name)
    assert created["paid"] is (price > 0)
    return owner, name, host


async def test_tickets_open_a_paid_show_once_and_are_refunded_when_it_ends_early(make_live: LiveFactory) -> None:
    live = await make_live()
    viewer, late = await live.api.user("fan"), await live.api.user("late")
    # A token from before the show started carries no ticket.
    owner = await live.api.user("host")
    status, room = await live.api.call("POST", "/rooms", owner, json={})
    name = room["room"]
    status, early = await live.room_token(late, name)
    assert status == 200 and "ticket" not in early
    await live.api.call("PUT", f"/rooms/{name}/price", owner, json={"price": PRICE})
    status, token = await live.room_token(owner, name, "broadcaster")
    host = await live.node.connect(token["token"])
    assert (await host.ok("show.create", room=name))["paid"] is True

    status, problem = await live.room_token(viewer, name)
    assert status == 402 and problem["status"] == 402, problem
    status, problem = await live.api.call("POST", f"/rooms/{name}/ticket", viewer)
    assert status == 402, problem  # no credits yet
    await live.fund(viewer, PRICE + 5)
    status, ticket = await live.api.call("POST", f"/rooms/{name}/ticket", viewer)
    assert status == 201 and ticket["price"] == PRICE and not ticket["replayed"], ticket
    status, again = await live.api.call("POST", f"/rooms/{name}/ticket", viewer)
    assert status == 200 and again["replayed"] and again["show_id"] == ticket["show_id"]
    viewer_id = uuid.UUID(viewer.id)
    assert (await live.ledger.balance(viewer_id)).available == 5  # charged once

    status, token = await live.room_token(viewer, name)
    assert status == 200, token
    fan = await live.node.connect(token["token"])
    await fan.ok("show.join", room=name)

    # The node refuses a token without this show's ticket.
    stranger = await live.node.connect(early["token"])
    refused = await stranger.request("show.join", room=name)
    assert refused["type"] == "error" and refused["code"] == "payment_required", refused

    # A price change during the show: new tickets only.
    await live.api.call("PUT", f"/rooms/{name}/price", owner, json={"price": PRICE * 2})
    await live.fund(late, PRICE * 2)
    status, dearer = await live.api.call("POST", f"/rooms/{name}/ticket", late)
    assert status == 201 and dearer["price"] == PRICE * 2
    assert (await live.ledger.balance(uuid.UUID(late.id))).available == 0

    # The show ends within the refund window: every ticket comes back.
    await host.ok("show.end", room=name)

    async def refunded() -> bool:
        return ((await live.ledger.balance(viewer_id)).available == PRICE + 5
                and (await live.ledger.balance(uuid.UUID(late.id))).available == PRICE * 2)

    await until(refunded)
    assert (await live.ledger.balance(uuid.UUID(owner.id), Kind.EARNINGS)).available == 0
    assert (await check_ledger(live.ledger.engine)).ok


async def test_a_show_that_ran_long_enough_keeps_its_tickets(make_live: LiveFactory) -> None:
    live = await make_live(ticket_refund_window_s=1)
    viewer = await live.api.user("fan")
    owner, name, host = await paid_show(live)
    await live.fund(viewer, PRICE)
    status, _ = await live.api.call("POST", f"/rooms/{name}/ticket", viewer)
    assert status == 201
    await asyncio.sleep(1.2)  # the show outlives the (1 s) refund window
    await host.ok("show.end", room=name)
    share = PRICE * live.ledger.share_percent // 100

    async def earned() -> bool:
        return (await live.ledger.balance(uuid.UUID(owner.id), Kind.EARNINGS)).available == share

    await until(earned)
    await asyncio.sleep(0.5)  # the end is handled by now: nothing was given back
    assert (await live.ledger.balance(uuid.UUID(viewer.id))).available == 0


async def test_a_gift_is_seen_by_the_whole_show_and_charged_once(make_live: LiveFactory) -> None:
    live = await make_live()
    owner, name, host = await paid_show(live, price=0)
    viewer, other = await live.api.user("giver"), await live.api.user("watcher")
    peers = []
    for user in (viewer, other):
        status, token = await live.room_token(user, name)
        assert status == 200, token
        peer = await live.node.connect(token["token"])
        await peer.ok("show.join", room=name)
        peers.append(peer)
    await live.fund(viewer, 10)
    status, sent = await live.api.call("POST", f"/rooms/{name}/gifts", viewer, json={"id": "g-1", "amount": 7})
    assert status == 201 and sent["amount"] == 7, sent
    for peer in (host, *peers):
        gift = await peer.expect("show.gift", room=name, id="g-1")
        assert gift["from"] == viewer.id and gift["amount"] == 7 and gift["name"] == "giver"
    status, again = await live.api.call("POST", f"/rooms/{name}/gifts", viewer, json={"id": "g-1", "amount": 7})
    assert status == 200 and again["replayed"]
    assert (await live.ledger.balance(uuid.UUID(viewer.id))).available == 3
    earned = await live.ledger.balance(uuid.UUID(owner.id), Kind.EARNINGS)
    assert earned.available == 7 * live.ledger.share_percent // 100
    status, problem = await live.api.call("POST", f"/rooms/{name}/gifts", viewer, json={"id": "g-2", "amount": 7})
    assert status == 402, problem
    status, problem = await live.api.call("POST", f"/rooms/{name}/gifts", viewer, json={"id": "g-3", "amount": -1})
    assert status == 422, problem
    await host.ok("show.end", room=name)
    status, problem = await live.api.call("POST", f"/rooms/{name}/gifts", viewer, json={"id": "g-4", "amount": 1})
    assert status == 409, problem


async def test_prices_are_whole_credits_within_bounds(make_live: LiveFactory) -> None:
    live = await make_live()
    owner, name, _ = await paid_show(live)
    for body in ({"call_price": -1}, {"ticket_price": 1.5}, {"call_price": 10**12}, {"ticket_price": "5"}):
        status, problem = await live.api.call("PUT", "/me/prices", owner, json=body)
        assert status == 422, (body, problem)
    status, problem = await live.api.call("PUT", f"/rooms/{name}/price", owner, json={"price": 2**31})
    assert status == 422, problem
    stranger = await live.api.user("stranger")
    status, _ = await live.api.call("PUT", f"/rooms/{name}/price", stranger, json={"price": 1})
    assert status == 404
    status, body = await live.api.call("PUT", "/me/prices", owner, json={"call_price": 1_000_000})
    assert status == 200 and body == {"ticket_price": 0, "call_price": 1_000_000}
    status, body = await live.api.call("GET", f"/rooms/{name}/price", stranger)
    assert status == 200 and body == {"room": name, "price": PRICE, "live": True, "paid_show": True}
