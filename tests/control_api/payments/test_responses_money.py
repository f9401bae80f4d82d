"""Payments answers are what /api/openapi.json says (``control_api/responses/money.py``): one walk through
every operation that speaks to Stripe (a real localstripe; Checkout and portal sessions, which it lacks,
from tests/control_api/payments/checkout_fake.py) and the emulator's, each answer validated by the
``conformance`` fixture; the walk then shows that each operation was checked. The paid-live half
(prices, tickets, gifts, tips, unlocks, wallet, earnings, payouts) walks in tests/paid/test_responses_paid.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from switchboard.stripe_emulator import API_KEY
from tests.control_api.conformance import Conformance
from tests.control_api.conftest import Api
from tests.control_api.payments.checkout_fake import FakeCheckout, faking
from tests.control_api.payments.conftest import CARDS, Stripe, payments_settings

STRIPE_OPS = {
    ("GET", "/payments/catalogue"), ("POST", "/payments/credit-packs/{pack}/intent"), ("POST", "/payments/webhook"),
    ("GET", "/payments/premium"), ("POST", "/payments/premium"), ("DELETE", "/payments/premium"),
    ("POST", "/payments/premium/portal"), ("POST", "/payments/checkout"), ("GET", "/payments/emulator"),
    ("POST", "/payments/emulator/payment-methods"), ("POST", "/payments/emulator/authenticate"),
}
"""What this walk shows conforming."""
CARD = {"exp_month": 12, "exp_year": 2030, "cvc": "123"}


async def test_every_stripe_answer_conforms(make_api: Callable[..., Awaitable[Api]], localstripe: str,
                                            conformance: Conformance) -> None:
    fakes: list[FakeCheckout] = []

    api = await make_api(payments=payments_settings(localstripe), gateway=faking(fakes))
    emulated = await make_api(payments=payments_settings(localstripe, stripe_api_key=API_KEY))
    hands = Stripe(localstripe, api)
    try:
        await hands.listen()  # localstripe's own signed deliveries reach this API's webhook
        user = await api.user()

        async def ok(app: Api, method: str, path: str, want: int = 200, **kw: Any) -> Any:
            status, body = await app.call(method, path, user if app is api else buyer, **kw)
            assert status == want, (method, path, status, body)
            return body

        emulated.n = 1000  # the two apps share the database: their users' addresses must differ
        buyer = await emulated.user()
        catalogue = await ok(api, "GET", "/payments/catalogue")
        assert catalogue["packs"]
        intent = await ok(api, "POST", "/payments/credit-packs/small/intent", 201,
                          json={"payment_method": await hands.card("ok")})
        assert intent["next"] is None and intent["status"] == "succeeded", intent

        async def credited() -> bool:
            return bool((await hands.wallet(user))["history"])

        await hands.until(credited)  # through POST /payments/webhook, from localstripe

        async def answered() -> bool:  # the webhook's answer is checked after its commit, which we saw
            return ("POST", "/payments/webhook") in conformance.checked

        await hands.until(answered)
        waiting = await ok(api, "POST", "/payments/credit-packs/small/intent", 201, json={})
        assert waiting["next"] == "confirm", waiting

        assert (await ok(api, "GET", "/payments/premium"))["subscription"] is None
        subscribed = await ok(api, "POST", "/payments/premium", 201, json={"payment_method": await hands.card("ok")})
        assert subscribed["premium"] and subscribed["subscription"]["current_period_end"], subscribed
        assert (await ok(api, "POST", "/payments/premium/portal"))["url"].startswith("https://billing.stripe.test/")
        assert fakes[0].portals
        assert not (await ok(api, "DELETE", "/payments/premium"))["premium"]
        assert (await ok(api, "POST", "/payments/checkout", 201, json={"item": "premium"}))["url"]

        assert (await ok(emulated, "GET", "/payments/emulator"))["emulator"] is True
        pm = await ok(emulated, "POST", "/payments/emulator/payment-methods", 201,
                      json={"number": CARDS["3ds"], **CARD})
        pending = await ok(emulated, "POST", "/payments/credit-packs/small/intent", 201,
                           json={"payment_method": pm["id"]})
        assert pending["next"] == "authenticate", pending
        failed = await ok(emulated, "POST", "/payments/emulator/authenticate",
                          json={"client_secret": pending["client_secret"], "success": False})
        assert failed["error"], failed
    finally:
        await hands.close()

    assert conformance.checked >= STRIPE_OPS, STRIPE_OPS - conformance.checked
    assert not conformance.broken, conformance.broken


async def test_a_history_cursor_past_64_bits_is_a_422_not_a_server_error(api: Api) -> None:
    """Found by schemathesis on these operations: Postgres refused the cursor with a 500."""
    user = await api.user()
    for path in ("/wallet", "/payments/earnings"):
        status, problem = await api.call("GET", f"{path}?before={2**70}", user)
        assert status == 422 and problem["errors"][0]["field"] == "before", (path, problem)
        status, page = await api.call("GET", f"{path}?before={2**63 - 1}", user)
        assert status == 200 and page["history"] == [], (path, page)
