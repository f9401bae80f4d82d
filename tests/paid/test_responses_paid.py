"""Paid-live answers are what /api/openapi.json says (``control_api/responses/money.py``): one walk through
prices, a ticket and a gift to a paid show live on a real node, a tip, a pay-per-view unlock (each
first and repeated: 201 then 200), the wallet, earnings and a payout, each answer validated by the
``conformance`` fixture; the walk then shows that each operation was checked. Together with
tests/control_api/payments/test_responses_money.py it reaches every operation of money.py."""

from __future__ import annotations

from typing import Any

from control_api.app import all_routes
from control_api.openapi import document
from control_api.responses import money
from tests.control_api.conformance import Conformance
from tests.control_api.payments.test_responses_money import STRIPE_OPS
from tests.control_api.test_ppv import direct, send_priced, unlock_path
from tests.paid.conftest import LiveFactory
from tests.paid.test_paid_shows import paid_show

LIVE_OPS = {
    ("GET", "/me/prices"), ("PUT", "/me/prices"), ("GET", "/rooms/{room}/price"), ("PUT", "/rooms/{room}/price"),
    ("POST", "/rooms/{room}/ticket"), ("POST", "/rooms/{room}/gifts"), ("POST", "/users/{user_id}/tips"),
    ("POST", "/messages/{message_id}/attachments/{media_id}/unlock"), ("GET", "/wallet"),
    ("GET", "/payments/earnings"), ("POST", "/payments/payouts"),
}
"""What this walk shows conforming."""


def test_the_two_walks_reach_every_money_operation() -> None:
    assert STRIPE_OPS | LIVE_OPS == set(money.RESPONSES)


def test_a_repeat_purchase_is_documented_as_200_with_the_same_shape() -> None:
    paths = document(all_routes())["paths"]
    for path in ("/rooms/{room}/ticket", "/rooms/{room}/gifts", "/users/{user_id}/tips",
                 "/messages/{message_id}/attachments/{media_id}/unlock"):
        answers = paths[path]["post"]["responses"]
        assert answers["200"]["content"] == answers["201"]["content"] == {
            "application/json": {"schema": money.RESPONSES[("POST", path)]}}, path


async def test_every_paid_live_answer_conforms(make_live: LiveFactory, conformance: Conformance) -> None:
    live = await make_live(payout_minimum=1)
    api = live.api

    async def ok(method: str, path: str, user: Any, want: int = 200, **kw: Any) -> Any:
        status, body = await api.call(method, path, user, **kw)
        assert status == want, (method, path, status, body)
        return body

    owner, name, _ = await paid_show(live)
    fan = await api.user("fan")
    await live.fund(fan, 500)
    assert await ok("GET", "/me/prices", owner) == {"ticket_price": 0, "call_price": 0}
    assert (await ok("PUT", "/me/prices", owner, json={"call_price": 3}))["call_price"] == 3
    price = await ok("GET", f"/rooms/{name}/price", fan)
    assert price["live"] and price["paid_show"], price

    for want in (201, 200):  # the first time, then a repeat that charges nothing
        ticket = await ok("POST", f"/rooms/{name}/ticket", fan, want)
        gift = await ok("POST", f"/rooms/{name}/gifts", fan, want, json={"id": "walk-gift", "amount": 10})
        tip = await ok("POST", f"/users/{owner.id}/tips", fan, want, json={"id": "walk-tip", "amount": 10})
        assert ticket["replayed"] is gift["replayed"] is tip["replayed"] is (want == 200)
    conv = await direct(api, owner, fan)
    status, msg, media_id = await send_priced(api, owner, conv, 20)
    assert status == 201, msg
    for want in (201, 200):
        assert (await ok("POST", unlock_path(msg, media_id), fan, want))["charged"] == 20

    wallet = await ok("GET", "/wallet", fan)
    assert {e["kind"] for e in wallet["history"]} >= {"ticket", "gift", "tip", "ppv"}, wallet
    earnings = await ok("GET", "/payments/earnings", owner)
    assert earnings["available"] > 0 and earnings["history"], earnings
    payout = await ok("POST", "/payments/payouts", owner, 201, json={"credits": earnings["available"]})
    assert payout["status"] == "requested"

    assert conformance.checked >= LIVE_OPS, LIVE_OPS - conformance.checked
    assert not conformance.broken, conformance.broken
