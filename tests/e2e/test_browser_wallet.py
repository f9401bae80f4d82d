"""The wallet and pay-per-view in real Chromium against ``switchboard up --stripe-emulator`` (a real
localstripe): A's card is declined, then a 3-D Secure card buys a pack on /wallet (the Stripe.js
stand-in, the bank's dialog, localstripe's signed webhook credits it); B sends A a private image with
a price from /messages; A sees it blurred, unlocks it and sees the whole image; A's balance and B's
earnings are right. The screenshots of docs/payments.md are taken here (docs/img/wallet-*.png)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import Up, account, call_api, doc_screenshot, up_on_fresh_data
from tests.e2e.conftest import Pages
from tests.e2e.test_browser_social import image_loaded

pytestmark = [pytest.mark.slow, pytest.mark.chromium]

PRICE = 30
"""What B asks for the image, in credits."""


@pytest.fixture(scope="module")
def up() -> Iterator[Up]:
    with up_on_fresh_data("switchboard-wallet-", args=("--stripe-emulator",)) as server:
        yield server


def picture() -> bytes:
    """A 240x180 PNG with detail (a checkerboard, a sun, a stripe) that the blur visibly removes."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (240, 180), (40, 120, 200))
    draw = ImageDraw.Draw(img)
    for x in range(0, 240, 30):
        for y in range(0, 180, 30):
            if (x + y) // 30 % 2:
                draw.rectangle((x, y, x + 29, y + 29), fill=(230, 230, 240))
    draw.ellipse((150, 20, 220, 90), fill=(250, 200, 40))
    draw.rectangle((0, 140, 240, 160), fill=(200, 40, 60))
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def shot(page: Any, name: str) -> None:
    doc_screenshot(page, f"wallet-{name}.png")


def natural_width(page: Any, selector: str) -> int:
    return int(page.eval_on_selector(selector, "(i) => i.naturalWidth"))


def test_buy_credits_then_unlock_a_private_image(pages: Pages, up: Up) -> None:
    ann, bob = account(up, "ann-wallet"), account(up, "bob-wallet")
    for who, pseudo in ((ann, "annwallet"), (bob, "bobwallet")):
        call_api(up, "PATCH", "/me/profile", {"pseudo": pseudo, "birth_date": "1990-01-02"},
                 token=who["access_token"])

    # A's wallet: empty; a declined card says so and charges nothing.
    a = pages.open("ann", "/wallet", ann)
    expect(a.locator("nav.top a[href='/wallet']")).to_be_visible()
    expect(a.locator("#balance")).to_have_text("0")
    expect(a.locator("#card-number")).to_be_visible()
    expect(a.locator("#pay")).to_be_enabled()
    a.fill("#card-number", "4000000000000341")
    a.click("#pay")
    expect(a.locator("#banner")).to_contain_text("Card declined")
    expect(a.locator("#balance")).to_have_text("0")

    # A 3-D Secure card: failing the bank's dialog charges nothing; passing it, the webhook credits
    # the pack (100 credits).
    a.click("button[data-card='4000000000003220']")
    a.click("#pay")
    a.click("#tds-fail")
    expect(a.locator("#banner")).to_contain_text("3-D Secure failed")
    expect(a.locator("#balance")).to_have_text("0")
    a.click("#pay")
    expect(a.locator("#tds")).to_be_visible()
    shot(a, "3ds")
    a.click("#tds-pass")
    expect(a.locator("#banner")).to_have_text("Bought 100 credits.")
    expect(a.locator("#balance")).to_have_text("100")
    expect(a.locator("#history tr").first).to_contain_text("+100")
    expect(a.locator("#premium-status")).to_have_text("Free")
    shot(a, "page")

    # B sends A a private image with a price, from the messages page.
    conv = call_api(up, "POST", "/conversations", {"members": [ann["user_id"]]}, token=bob["access_token"])
    b = pages.open("bob", f"/messages#{conv['id']}", bob)
    expect(b.locator("#thread-box")).to_be_visible()
    b.set_input_files("#attach", files=[{"name": "secret.png", "mimeType": "image/png",
                                         "buffer": picture()}])
    b.fill("#price", str(PRICE))
    b.click("#send button[type=submit]")
    expect(b.locator("#thread figure.attachment figcaption")).to_have_text(f"Private · {PRICE} credits")

    # A sees it blurred with its price; unlocking shows the whole image.
    a.goto(f"/messages#{conv['id']}")
    figure = a.locator("#thread figure.attachment")
    expect(figure).to_have_class("attachment locked")
    unlock = figure.locator("button.unlock")
    expect(unlock).to_have_text(f"Unlock for {PRICE} credits")
    image_loaded(a, "#thread figure.attachment img")
    assert natural_width(a, "#thread figure.attachment img") <= 32  # the preview, not the image
    shot(a, "ppv-locked")
    unlock.click()
    expect(figure.locator("figcaption")).to_have_text(f"Unlocked · {PRICE} credits")
    expect(figure).to_have_class("attachment")
    a.wait_for_function("() => document.querySelector('#thread figure.attachment img').naturalWidth === 240")
    shot(a, "ppv-unlocked")

    # The money: A paid once, B earned the creator share.
    wallet = call_api(up, "GET", "/wallet", token=ann["access_token"])
    assert wallet["available"] == 100 - PRICE, wallet
    assert [h["kind"] for h in wallet["history"]][:2] == ["ppv", "ppv"], wallet["history"]  # creator + platform parts
    earnings = call_api(up, "GET", "/payments/earnings", token=bob["access_token"])
    assert earnings["available"] == PRICE * earnings["share_percent"] // 100, earnings
    a.goto("/wallet")
    expect(a.locator("#balance")).to_have_text(str(100 - PRICE))
    unlocked = a.locator("#history tr", has_text="Unlocked a private image")
    expect(unlocked).to_have_count(1)  # the creator's and the platform's parts are one row
    expect(unlocked).to_contain_text(f"-{PRICE}")

    # History pages back ten transfers at a time; each spend (two transfers) stays one row.
    for i in range(12):
        call_api(up, "POST", f"/users/{bob['user_id']}/tips", {"id": f"tip-{i}", "amount": 1},
                 token=ann["access_token"])
    a.reload()
    expect(a.locator("#balance")).to_have_text(str(100 - PRICE - 12))
    expect(a.locator("#older")).to_be_visible()
    while a.locator("#older").is_visible():
        a.click("#older")  # disabled while its page loads
        a.wait_for_function("() => { const b = document.getElementById('older'); return b.hidden || !b.disabled; }")
    expect(a.locator("#history tr")).to_have_count(1 + 1 + 12)  # the pack, the image, the tips
    shot(a, "history")

    # Premium from the same page: upgrade with a card, then cancel.
    a.click("button[data-card='4242424242424242']")
    a.click("#upgrade")
    expect(a.locator("#banner")).to_have_text("Welcome to premium.")
    expect(a.locator("#premium-status")).to_have_text("Premium")
    expect(a.locator("#cancel")).to_be_visible()
    a.click("#cancel")
    expect(a.locator("#banner")).to_have_text("Premium is cancelled.")
    expect(a.locator("#premium-status")).to_have_text("Free")
