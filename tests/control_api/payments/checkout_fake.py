"""Tests only: Checkout Sessions and customer-portal sessions, which localstripe lacks, as a Gateway
wrapper over the real one.

``checkout_url`` records a session; ``complete`` plays the customer paying on the hosted page: the
payment (or subscription) is made in localstripe for real, and ``checkout.session.completed`` is
posted to the webhook signed with Stripe's scheme, as Stripe would."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from control_api.payments.lifecycle import open_gateway
from control_api.payments.signature import sign
from control_api.payments.stripe_gateway import StripeGateway


@dataclass
class Session:
    id: str
    customer: str
    mode: str
    price: str | None
    amount: int | None
    currency: str
    metadata: dict[str, str]


class FakeCheckout:
    """Delegates everything to the real gateway except Checkout Sessions and portal sessions."""

    def __init__(self, real: StripeGateway) -> None:
        self._real = real
        self.sessions: dict[str, Session] = {}
        self.portals: list[tuple[str, str]] = []
        """(customer, return URL) of each portal session asked for."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    async def checkout_url(self, *, customer: str, mode: str, price: str | None, amount: int | None,
                           currency: str, name: str, metadata: Mapping[str, str], success_url: str,
                           idempotency_key: str) -> str:
        session = Session(f"cs_test_{uuid.uuid4().hex[:16]}", customer, mode, price, amount, currency, dict(metadata))
        self.sessions[session.id] = session
        return f"https://checkout.stripe.test/c/pay/{session.id}"

    async def portal_url(self, customer: str, return_url: str) -> str:
        self.portals.append((customer, return_url))
        return f"https://billing.stripe.test/p/session/bps_test_{uuid.uuid4().hex[:16]}"

    async def complete(self, session_id: str, card: str, deliver: Callable[[bytes, str], Awaitable[Any]],
                       secret: str) -> Any:
        s = self.sessions[session_id]
        await self._real.attach_card(s.customer, card)
        obj: dict[str, Any] = {"id": s.id, "object": "checkout.session", "mode": s.mode, "customer": s.customer,
                               "metadata": s.metadata, "status": "complete", "payment_status": "paid"}
        if s.mode == "payment":
            assert s.amount is not None
            intent = await self._real.create_intent(customer=s.customer, amount=s.amount, currency=s.currency,
                                                    metadata=s.metadata, payment_method=card,
                                                    idempotency_key=f"fake-checkout:{s.id}")
            obj["payment_intent"] = intent.id
        else:
            assert s.price is not None
            sub = await self._real.create_subscription(customer=s.customer, plan=s.price, metadata=s.metadata,
                                                       idempotency_key=f"fake-checkout:{s.id}")
            obj["subscription"] = sub.id
        event = {"id": f"evt_{uuid.uuid4().hex[:16]}", "object": "event", "type": "checkout.session.completed",
                 "created": int(time.time()), "data": {"object": obj}}
        body = json.dumps(event).encode()
        return await deliver(body, sign(body, secret))


def faking(fakes: list[FakeCheckout]) -> Callable[[Any], FakeCheckout]:
    """An API's gateway opener: the real Stripe gateway its settings name, wrapped in a FakeCheckout
    that is appended to ``fakes`` (one per app that opens it)."""
    def gateway(settings: Any) -> FakeCheckout:
        real = open_gateway(settings)
        assert isinstance(real, StripeGateway)
        fakes.append(FakeCheckout(real))
        return fakes[-1]

    return gateway
