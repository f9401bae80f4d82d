"""The Stripe.js stand-in's server half against a real localstripe: a test card becomes a
PaymentMethod, 3-D Secure is passed or failed for one's own intent only, and none of it exists
unless payments point at the emulator."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from switchboard.stripe_emulator import API_KEY
from tests.control_api.conftest import Api
from tests.control_api.payments.conftest import CARDS, Stripe, payments_settings

CARD = {"exp_month": 12, "exp_year": 2030, "cvc": "123"}


async def test_the_emulator_routes_are_absent_with_another_key(stripe_api: Stripe) -> None:
    user = await stripe_api.api.user()
    assert (await stripe_api.api.call("GET", "/payments/emulator", user))[0] == 404
    status, _ = await stripe_api.api.call("POST", "/payments/emulator/payment-methods", user,
                                          json={"number": CARDS["ok"], **CARD})
    assert status == 404


async def test_a_test_card_bought_with_3ds_through_the_stand_in_routes(
        make_api: Callable[..., Awaitable[Api]], localstripe: str) -> None:
    api = await make_api(payments=payments_settings(localstripe, stripe_api_key=API_KEY))
    hands = Stripe(localstripe, api)
    try:
        await hands.listen()
        buyer, other = await api.user(), await api.user()
        status, info = await api.call("GET", "/payments/emulator", buyer)
        assert status == 200 and info["test_cards"]["3-D Secure"] == CARDS["3ds"]
        status, pm = await api.call("POST", "/payments/emulator/payment-methods", buyer,
                                    json={"number": CARDS["3ds"], **CARD})
        assert status == 201 and pm["id"].startswith("pm_"), pm
        status, intent = await api.call("POST", "/payments/credit-packs/small/intent", buyer,
                                        json={"payment_method": pm["id"]})
        assert status == 201 and intent["next"] == "authenticate", intent
        secret = {"client_secret": intent["client_secret"], "success": True}
        status, problem = await api.call("POST", "/payments/emulator/authenticate", other, json=secret)
        assert status == 404, problem  # not the other user's to pass
        status, done = await api.call("POST", "/payments/emulator/authenticate", buyer, json=secret)
        assert status == 200 and done["status"] == "succeeded", done

        async def credited() -> bool:
            return (await hands.wallet(buyer))["available"] == 100

        await hands.until(credited)
        status, problem = await api.call("POST", "/payments/emulator/payment-methods", buyer,
                                         json={"number": "12", **CARD})
        assert status == 422, problem
        status, failed = await _failed_3ds(api, buyer)
        assert status == 200 and failed["error"] == "3-D Secure authentication failed", failed
    finally:
        await hands.close()


async def _failed_3ds(api: Api, buyer: Any) -> tuple[int, Any]:
    pm = (await api.call("POST", "/payments/emulator/payment-methods", buyer, json={"number": CARDS["3ds"], **CARD}))[1]
    intent = (await api.call("POST", "/payments/credit-packs/small/intent", buyer,
                             json={"payment_method": pm["id"]}))[1]
    return await api.call("POST", "/payments/emulator/authenticate", buyer,
                          json={"client_secret": intent["client_secret"], "success": False})
