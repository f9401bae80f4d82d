"""What the browser's Stripe.js stand-in (web/lib/stripe_standin.js) needs from the server, under
``switchboard up --stripe-emulator`` only.

Pages may talk to their own origin only (their CSP), and localstripe lets a publishable key neither
create a PaymentMethod nor reach it from another origin; so the stand-in asks these routes, which
ask localstripe with the emulator's key. They answer 404 unless payments point at localstripe with
:data:`switchboard.stripe_emulator.API_KEY`: a real Stripe account (test or live) never has them,
and real card data never reaches this server (Stripe.js sends it to Stripe)."""

from __future__ import annotations

import re
from typing import Any

import aiohttp

from control_api.errors import NotFound, ValidationFailed
from control_api.http import Call, Reply, Route
from control_api.payments.service import PAYMENTS, Payments
from control_api.payments.types import CardDeclined, GatewayDown
from control_api.schema import Field, Schema
from switchboard.stripe_emulator import API_KEY

TEST_CARDS = {"ok": "4242424242424242", "3-D Secure": "4000000000003220", "declined": "4000000000000341"}
"""What the stand-in offers to fill in (docs/payments.md lists them)."""
_SECRET = re.compile(r"(pi_[A-Za-z0-9]+)_secret_[A-Za-z0-9]+")


def _emulated(call: Call) -> Payments:
    payments = call.request.config_dict[PAYMENTS]
    settings = payments.settings
    if not settings.stripe_api_base or settings.stripe_api_key != API_KEY:
        raise NotFound("no Stripe emulator here: pages use Stripe.js")
    return payments


async def _localstripe(payments: Payments, path: str, form: dict[str, str]) -> Any:
    settings = payments.settings
    timeout = aiohttp.ClientTimeout(total=settings.stripe_timeout_s)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as http, http.post(
                settings.stripe_api_base.rstrip("/") + path, data=form,
                headers={"Authorization": f"Bearer {API_KEY}"}) as resp:
            body = await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        raise GatewayDown("the Stripe emulator did not answer; retry") from None
    if resp.status >= 400:
        error = (body or {}).get("error") or {}
        raise CardDeclined(str(error.get("message") or "the card was refused"))
    return body


async def _status(call: Call) -> Reply:
    _emulated(call)
    return Reply({"emulator": True, "test_cards": TEST_CARDS})


async def _payment_method(call: Call) -> Reply:
    payments, body = _emulated(call), call.body
    pm = await _localstripe(payments, "/v1/payment_methods", {
        "type": "card", "card[number]": body["number"], "card[exp_month]": str(body["exp_month"]),
        "card[exp_year]": str(body["exp_year"]), "card[cvc]": body["cvc"]})
    return Reply({"id": pm["id"], "card": {"last4": body["number"][-4:]}}, 201)


async def _authenticate(call: Call) -> Reply:
    """The outcome of the stand-in's 3-D Secure dialog, for an intent of the caller's."""
    payments, body = _emulated(call), call.body
    match = _SECRET.fullmatch(body["client_secret"])
    if match is None:
        raise ValidationFailed({"client_secret": "is not a PaymentIntent's client secret"})
    intent = await payments.gateway.get_intent(match.group(1))
    if intent.metadata.get("user_id") != str(call.me.user_id):
        raise NotFound("no such payment")
    pi = await _localstripe(payments, f"/v1/payment_intents/{intent.id}/_authenticate",
                            {"client_secret": body["client_secret"], "success": "true" if body["success"] else "false"})
    return Reply({"id": pi["id"], "status": pi["status"],
                  "error": "3-D Secure authentication failed" if pi["status"] == "requires_payment_method" else None})


def routes() -> list[Route]:
    return [
        Route("GET", "/payments/emulator", _status, "Under --stripe-emulator: the test cards (404 elsewhere)",
              "payments"),
        Route("POST", "/payments/emulator/payment-methods", _payment_method,
              "Under --stripe-emulator: a test card as a PaymentMethod (what Stripe.js does in production)",
              "payments", body=Schema({
                  "number": Field("string", pattern=r"[0-9]{16}"),
                  "exp_month": Field("integer", minimum=1, maximum=12),
                  "exp_year": Field("integer", minimum=2000, maximum=2099),
                  "cvc": Field("string", pattern=r"[0-9]{3}"),
              }), ok=201),
        Route("POST", "/payments/emulator/authenticate", _authenticate,
              "Under --stripe-emulator: pass or fail 3-D Secure for my PaymentIntent", "payments",
              body=Schema({"client_secret": Field("string", max_len=200), "success": Field("boolean")})),
    ]
