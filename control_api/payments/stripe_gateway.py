"""The Gateway over the ``stripe`` library (>= 15: objects are not dicts; read attributes, never
``.get``). Async calls through aiohttp, a timeout on every call, network retries reusing the
caller's idempotency key, and Stripe's errors turned into ours."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import aiohttp
import stripe

from control_api.payments.types import CardDeclined, GatewayDown, GatewayRefused, Intent, Refund, Sub

log = logging.getLogger("switchboard.api.stripe")
T = TypeVar("T")


def _attr(obj: Any, name: str, default: Any = None) -> Any:
    """A field of a Stripe object that may be absent (localstripe leaves some out)."""
    try:
        value = obj[name]
    except (KeyError, TypeError, AttributeError):
        return default
    return default if value is None else value


def _metadata(obj: Any) -> dict[str, str]:
    meta = _attr(obj, "metadata")
    return {str(k): str(v) for k, v in (meta.to_dict() if hasattr(meta, "to_dict") else dict(meta or {})).items()}


def _id(value: Any) -> str | None:
    """An id field that may be expanded into an object."""
    if value is None or isinstance(value, str):
        return value
    return str(_attr(value, "id"))


def intent_from(pi: Any) -> Intent:
    error = _attr(pi, "last_payment_error")
    return Intent(id=pi.id, status=pi.status, amount=int(pi.amount), currency=str(pi.currency),
                  client_secret=str(_attr(pi, "client_secret", "")), customer=_id(_attr(pi, "customer")),
                  metadata=_metadata(pi), error=str(_attr(error, "message", "")) or None if error else None)


def sub_from(sub: Any) -> Sub:
    plan = _attr(sub, "plan")
    if plan is None:
        items = _attr(_attr(sub, "items"), "data", [])
        plan = _attr(items[0], "price") or _attr(items[0], "plan") if items else None
    period_end = _attr(sub, "current_period_end")
    return Sub(id=sub.id, customer=str(_id(sub.customer)), status=str(sub.status), plan=str(_id(plan) or ""),
               current_period_end=int(period_end) if period_end is not None else None,
               cancel_at_period_end=bool(_attr(sub, "cancel_at_period_end", False)), metadata=_metadata(sub))


class StripeGateway:
    """Stripe (or localstripe when ``api_base`` points at it)."""

    def __init__(self, api_key: str, *, api_base: str = "", timeout_s: float = 10.0, retries: int = 2) -> None:
        # The library's telemetry reads (and writes) ~/.config/stripe/telemetry_id on the event loop
        # at the first request, and reports our request timings to Stripe: off for the process.
        stripe.enable_telemetry = False
        self._http = stripe.AIOHTTPClient(timeout=aiohttp.ClientTimeout(total=timeout_s))
        self._client = stripe.StripeClient(
            api_key, http_client=self._http, max_network_retries=retries,
            base_addresses={"api": api_base} if api_base else None)
        self._deadline_s = timeout_s * (retries + 1) + 1
        self.v1 = self._client.v1

    async def _call(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            async with asyncio.timeout(self._deadline_s):
                return await fn()
        except stripe.CardError as exc:
            raise CardDeclined(exc.user_message or "the card was declined") from None
        except stripe.InvalidRequestError as exc:
            raise GatewayRefused(f"the payment service refused the {what}: {exc.user_message or exc}") from None
        except (stripe.StripeError, TimeoutError) as exc:
            log.warning("stripe %s failed: %s", what, exc)
            raise GatewayDown(f"the payment service did not answer ({what}); retry") from None

    async def ensure_plan(self, plan_id: str, amount: int, currency: str, name: str) -> None:
        try:
            await self._call("plan", lambda: self.v1.plans.retrieve_async(plan_id))
            return
        except GatewayRefused:
            pass
        await self._call("plan", lambda: self.v1.plans.create_async(
            {"id": plan_id, "amount": amount, "currency": currency, "interval": "month",
             "product": {"name": name}}, {"idempotency_key": f"plan:{plan_id}:{amount}:{currency}"}))

    async def create_customer(self, user_id: str, email: str, *, idempotency_key: str) -> str:
        customer = await self._call("customer", lambda: self.v1.customers.create_async(
            {"email": email, "metadata": {"user_id": user_id}}, {"idempotency_key": idempotency_key}))
        return str(customer.id)

    async def attach_card(self, customer: str, payment_method: str) -> None:
        await self._call("attach", lambda: self.v1.payment_methods.attach_async(
            payment_method, {"customer": customer}, {"idempotency_key": f"attach:{customer}:{payment_method}"}))
        await self._call("default card", lambda: self.v1.customers.update_async(
            customer, {"invoice_settings": {"default_payment_method": payment_method}}))

    async def create_intent(self, *, customer: str, amount: int, currency: str, metadata: Mapping[str, str],
                            payment_method: str | None, idempotency_key: str) -> Intent:
        params: dict[str, Any] = {"amount": amount, "currency": currency, "customer": customer,
                                  "metadata": dict(metadata)}
        if payment_method:
            params.update(payment_method=payment_method, confirm=True)
        pi = await self._call("payment intent", lambda: self.v1.payment_intents.create_async(
            params, {"idempotency_key": idempotency_key}))  # type: ignore[arg-type]
        return intent_from(pi)

    async def get_intent(self, intent_id: str) -> Intent:
        return intent_from(await self._call("payment intent", lambda: self.v1.payment_intents.retrieve_async(
            intent_id)))

    async def refunds_of(self, intent_id: str) -> list[Refund]:
        page = await self._call("refunds", lambda: self.v1.refunds.list_async({"payment_intent": intent_id,
                                                                               "limit": 100}))
        return [Refund(r.id, intent_id, int(r.amount), str(r.status)) for r in page.data]

    async def refund(self, intent_id: str, amount: int | None, *, idempotency_key: str) -> Refund:
        params: dict[str, Any] = {"payment_intent": intent_id}
        if amount is not None:
            params["amount"] = amount
        r = await self._call("refund", lambda: self.v1.refunds.create_async(
            params, {"idempotency_key": idempotency_key}))  # type: ignore[arg-type]
        return Refund(r.id, intent_id, int(r.amount), str(r.status))

    async def create_subscription(self, *, customer: str, plan: str, metadata: Mapping[str, str],
                                  idempotency_key: str) -> Sub:
        sub = await self._call("subscription", lambda: self.v1.subscriptions.create_async(
            {"customer": customer, "items": [{"plan": plan}], "metadata": dict(metadata)},  # type: ignore[typeddict-unknown-key]
            {"idempotency_key": idempotency_key}))
        return sub_from(sub)

    async def get_subscription(self, sub_id: str) -> Sub:
        return sub_from(await self._call("subscription", lambda: self.v1.subscriptions.retrieve_async(sub_id)))

    async def cancel_subscription(self, sub_id: str) -> Sub:
        return sub_from(await self._call("subscription", lambda: self.v1.subscriptions.cancel_async(sub_id)))

    async def portal_url(self, customer: str, return_url: str) -> str:
        session = await self._call("portal", lambda: self.v1.billing_portal.sessions.create_async(
            {"customer": customer, "return_url": return_url}))
        return str(session.url)

    async def checkout_url(self, *, customer: str, mode: str, price: str | None, amount: int | None,
                           currency: str, name: str, metadata: Mapping[str, str], success_url: str,
                           idempotency_key: str) -> str:
        item: dict[str, Any] = {"quantity": 1}
        if price:
            item["price"] = price
        else:
            item["price_data"] = {"currency": currency, "unit_amount": amount, "product_data": {"name": name}}
        params: dict[str, Any] = {"customer": customer, "mode": mode, "line_items": [item], "metadata": dict(metadata),
                                  "success_url": success_url, "cancel_url": success_url}
        if mode == "payment":
            params["payment_intent_data"] = {"metadata": dict(metadata)}
        else:
            params["subscription_data"] = {"metadata": dict(metadata)}
        session = await self._call("checkout", lambda: self.v1.checkout.sessions.create_async(
            params, {"idempotency_key": idempotency_key}))  # type: ignore[arg-type]
        return str(session.url)

    async def paid_intents(self, since: int) -> list[Intent]:
        out: list[Intent] = []
        after: str | None = None
        while True:
            # Filtered here: localstripe does not filter lists by ``created``.
            params: dict[str, Any] = {"limit": 100}
            if after:
                params["starting_after"] = after
            page = await self._call("list intents", lambda p=params: self.v1.payment_intents.list_async(p))  # type: ignore[misc]
            out.extend(intent_from(pi) for pi in page.data if pi.status == "succeeded" and int(pi.created) >= since)
            if not page.has_more or not page.data:
                return out
            after = page.data[-1].id

    async def close(self) -> None:
        await self._http.close_async()
