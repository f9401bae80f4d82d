"""The success answers of money: the wallet and earnings (ledger entries), the catalogue, buying packs,
premium, payouts, tips, Stripe's webhook and its emulator, creators' prices, tickets, gifts and
pay-per-view unlocks."""

from __future__ import annotations

from typing import Any

from control_api.responses.shapes import BOOL, INT, STR, TIME, UUID, array, maybe, nullable, obj, ref

COMPONENTS: dict[str, dict[str, Any]] = {
    "LedgerEntry": obj(
        {"seq": {**INT, "description": "the page's cursor: pass it as `before` for older entries"},
         "id": {**STR, "description": "the transfer's id (its idempotency key)"},
         "kind": {**STR, "description": "purchase, tip, gift, ticket, ppv, call_minute, payout, refund..."},
         "phase": {"enum": ["single", "pending", "post", "void"],
                   "description": "single: done at once; pending: a hold; post/void: a hold's end"},
         "amount": {**INT, "description": "credits, signed: + into the account, - out of it"},
         "at": TIME, "meta": {"type": "object"}},
        description="One movement of an account (newest first in a history)"),
    "Balance": obj({"available": INT, "history": array(ref("LedgerEntry"))},
                   description="An account's spendable credits and its movements, newest first"),
    "PremiumStatus": obj(
        {"premium": BOOL,
         "subscription": maybe(obj({"id": STR, "status": STR, "current_period_end": nullable("integer"),
                                    "cancel_at_period_end": BOOL},
                                   description="the live subscription, else the latest one; "
                                               "`current_period_end` in Unix seconds"))},
        description="Whether premium is on, and the subscription behind it"),
    "Link": obj({"url": STR}, description="A Stripe page to send the user to"),
    "CreatorPrices": obj({"ticket_price": INT, "call_price": INT},
                         description="A creator's default ticket and price per call minute, in credits (0: free)"),
    "Spend": obj(
        {"amount": {**INT, "description": "credits taken from my wallet"},
         "creator_amount": {**INT, "description": "the creator's share of them"},
         "replayed": {**BOOL, "description": "a repeat of the same id: nothing charged again (HTTP 200)"}},
        description="Credits spent on a creator"),
}
"""Named schemas, added to ``components.schemas``."""


def _spend(fields: dict[str, Any]) -> dict[str, Any]:
    return {"allOf": [ref("Spend"), obj(fields)]}


RESPONSES: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/wallet"): {"allOf": [ref("Balance"), obj({"held": {**INT, "description": "credits on hold"}})]},
    ("GET", "/payments/earnings"): {"allOf": [ref("Balance"), obj({"share_percent": INT})]},
    ("GET", "/payments/catalogue"): obj({
        "currency": STR,
        "premium": obj({"plan": STR, "price": INT, "interval": {"const": "month"}}),
        "packs": array(obj({"name": STR, "credits": INT, "price": {**INT, "description": "minor units"}})),
        "stripe": obj({"publishable_key": STR, "js": STR}),
        "creator_share_percent": INT,
    }),
    ("POST", "/payments/credit-packs/{pack}/intent"): obj({
        "intent_id": STR, "status": STR, "client_secret": STR, "amount": INT, "currency": STR, "credits": INT,
        "credited": BOOL,
        "next": {"enum": ["authenticate", "confirm", None],
                 "description": "what the page does next with Stripe.js; null: nothing (paid, or failed)"},
    }),
    ("GET", "/payments/premium"): ref("PremiumStatus"),
    ("POST", "/payments/premium"): ref("PremiumStatus"),
    ("DELETE", "/payments/premium"): ref("PremiumStatus"),
    ("POST", "/payments/premium/portal"): ref("Link"),
    ("POST", "/payments/checkout"): ref("Link"),
    ("POST", "/payments/payouts"): obj({"id": INT, "credits": INT, "status": {"const": "requested"}, "note": STR}),
    ("POST", "/users/{user_id}/tips"): _spend({"id": STR}),
    ("POST", "/payments/webhook"): obj({"received": {"const": True}, "id": STR, "duplicate": BOOL,
                                        "processed": {**BOOL, "description": "acted on already (else soon)"}}),
    ("GET", "/payments/emulator"): obj({"emulator": {"const": True},
                                        "test_cards": {"type": "object", "additionalProperties": STR}}),
    ("POST", "/payments/emulator/payment-methods"): obj({"id": STR, "card": obj({"last4": STR})}),
    ("POST", "/payments/emulator/authenticate"): obj({"id": STR, "status": STR, "error": nullable("string")}),
    ("GET", "/me/prices"): ref("CreatorPrices"),
    ("PUT", "/me/prices"): ref("CreatorPrices"),
    ("GET", "/rooms/{room}/price"): obj({"room": STR, "price": INT, "live": BOOL, "paid_show": BOOL}),
    ("PUT", "/rooms/{room}/price"): obj({"room": STR, "price": INT}),
    ("POST", "/rooms/{room}/ticket"): obj({"room": STR, "show_id": STR, "price": INT,
                                           "replayed": {**BOOL, "description": "bought before (HTTP 200)"},
                                           "refunded": BOOL}),
    ("POST", "/rooms/{room}/gifts"): _spend({"id": STR, "room": STR}),
    ("POST", "/messages/{message_id}/attachments/{media_id}/unlock"): obj({
        "message_id": INT, "media_id": UUID, "price": INT,
        "charged": {**INT, "description": "credits taken now or the first time"},
        "replayed": {**BOOL, "description": "paid before: nothing charged again (HTTP 200)"},
        "url": {**STR, "description": "the full image"}}),
}
"""The success answer of each typed operation, by method and OpenAPI path (``/api`` left out)."""
