"""Paid live pages in real Chromium against ``switchboard up --stripe-emulator``: a broadcaster sets
a ticket price, a viewer is offered the ticket on /watch, buys it and plays the show, sends a gift
that both chats show; the creator sees the earnings on /earnings and sets a per-minute call price."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import Up, account, call_api, doc_screenshot, up_on_fresh_data
from tests.e2e.conftest import Pages
from tests.e2e.test_browser_show import assert_playing, room_of

pytestmark = [pytest.mark.slow, pytest.mark.chromium]
OPEN = urllib.request.build_opener(urllib.request.ProxyHandler({}))
MINUTE_S = 4


@pytest.fixture(scope="module")
def up() -> Iterator[Up]:
    # A short billed minute: the paid call below runs out of credits within seconds.
    with up_on_fresh_data("switchboard-browser-", {"SWITCHBOARD_NODE_PAID_MINUTE_S": str(MINUTE_S)},
                          args=("--stripe-emulator",)) as server:
        yield server


def buy_credits(up: Up, login: dict[str, Any]) -> int:
    """A pack bought with localstripe's plain test card (credited at once); the wallet's credits."""
    catalogue = call_api(up, "GET", "/payments/catalogue")
    stripe = catalogue["stripe"]["js"].split("/js.stripe.com")[0]
    form = urllib.parse.urlencode({"type": "card", "card[number]": "4242424242424242", "card[exp_month]": "12",
                                   "card[exp_year]": "2030", "card[cvc]": "123"}).encode()
    request = urllib.request.Request(f"{stripe}/v1/payment_methods", data=form, method="POST",
                                     headers={"Authorization": "Bearer sk_test_x"})
    with OPEN.open(request, timeout=30) as resp:
        card = json.loads(resp.read())["id"]
    intent = call_api(up, "POST", "/payments/credit-packs/small/intent", {"payment_method": card},
                      login["access_token"])
    assert intent["credited"], intent
    return int(call_api(up, "GET", "/wallet", token=login["access_token"])["available"])


def test_ticket_gift_and_earnings_pages(pages: Pages, up: Up) -> None:
    host_login, fan_login = account(up, "paidhost"), account(up, "paidfan")
    host = pages.open("broadcaster", "/broadcast", host_login)
    expect(host.locator("nav.top")).to_contain_text("Earnings")
    host.fill("#title", "paid")
    host.fill("#price", "5")
    host.click("#start")
    expect(host.locator("#banner")).to_have_text("You are live.")
    room = room_of(host)
    credits = buy_credits(up, fan_login)

    fan = pages.open("viewer", f"/watch/{room}", fan_login)
    expect(fan.locator("#buy-ticket")).to_contain_text("5 credits")
    doc_screenshot(fan, "paid-ticket.png")
    fan.click("#buy-ticket")
    assert_playing(fan, "#video")
    assert call_api(up, "GET", "/wallet", token=fan_login["access_token"])["available"] == credits - 5

    fan.fill("#gift-amount", "3")
    fan.click("#gift-send")
    for page in (host, fan):
        expect(page.locator("#chat li.gift")).to_contain_text("sent a gift of 3 credits")
    doc_screenshot(host, "paid-gift.png")

    earnings = pages.open("earnings", "/earnings", host_login)
    expected = 5 * 70 // 100 + 3 * 70 // 100
    expect(earnings.locator("#available")).to_have_attribute("data-credits", str(expected))
    expect(earnings.locator("#history li")).to_have_count(2)
    earnings.fill("#call_price", "7")
    earnings.click("#save-prices")
    expect(earnings.locator("#banner")).to_contain_text("Prices saved.")
    doc_screenshot(earnings, "paid-earnings.png")
    assert call_api(up, "GET", "/me/prices", token=host_login["access_token"])["call_price"] == 7


def test_a_paid_call_shows_its_cost_and_why_it_ended(pages: Pages, up: Up) -> None:
    caller, creator = account(up, "paidcaller"), account(up, "paidcreator")
    for login, pseudo in ((caller, "paycaller"), (creator, "paycreator")):
        call_api(up, "PATCH", "/me/profile", {"pseudo": pseudo, "birth_date": "1990-01-02"},
                 token=login["access_token"])
    call_api(up, "POST", f"/users/{creator['user_id']}/follow", {}, token=caller["access_token"])
    call_api(up, "POST", f"/users/{caller['user_id']}/follow", {}, token=creator["access_token"])
    wallet = buy_credits(up, caller)
    price = wallet // 2 - 1  # two minutes, not three
    call_api(up, "PUT", "/me/prices", {"call_price": price}, token=creator["access_token"])

    callee = pages.open("creator", "/space", creator)
    page = pages.open("caller", f"/u/{creator['user_id']}", caller)
    expect(page.locator("#livecam-call")).to_be_visible()
    page.click("#livecam-call")
    expect(callee.locator("#call-cost")).to_contain_text(f"{price} credits per minute")
    callee.click("#livecam-accept")
    assert_playing(page, "#livecam-remote")
    expect(page.locator("#call-cost")).to_contain_text(f"{price} credits so far")
    doc_screenshot(page, "paid-call.png")
    expect(page.locator("#call-cost")).to_have_attribute("data-cost", str(2 * price), timeout=3 * MINUTE_S * 1000)
    for side in (page, callee):
        expect(side.locator("#livecam-state")).to_have_text("The call ended: the caller's credits ran out.",
                                                            timeout=3 * MINUTE_S * 1000)
    assert call_api(up, "GET", "/wallet", token=caller["access_token"])["available"] == wallet - 2 * price
