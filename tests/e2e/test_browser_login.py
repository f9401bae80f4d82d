"""/login in real Chromium: register, type the mailed code (no SMTP: it is in the log), land logged
in; a wrong password says so; pages that need a login send a stranger to /login and back; the
moderation console refuses a non-moderator and a banned account cannot log in."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import Up, account, admin, call_api, mailed_code
from tests.e2e.conftest import Pages

pytestmark = [pytest.mark.slow, pytest.mark.chromium]


def test_register_verify_log_in_and_come_back(pages: Pages, up: Up) -> None:
    page = pages.open("visitor", "/random", None)
    expect(page).to_have_url(f"{up.base}/login?next=%2Frandom")
    page.fill("#register-email", "zoe@example.com")
    page.fill("#register-password", "long enough password")
    page.click("#register button[type=submit]")
    expect(page.locator("#verify")).to_be_visible()
    page.fill("#verify-code", "000000" if mailed_code(up, "zoe@example.com") != "000000" else "111111")
    page.click("#verify button[type=submit]")
    expect(page.locator("#banner")).to_have_text("Wrong or expired code.")
    page.fill("#verify-code", mailed_code(up, "zoe@example.com"))
    page.click("#verify button[type=submit]")
    expect(page).to_have_url(f"{up.base}/random")
    stored = page.evaluate("JSON.parse(sessionStorage.getItem('switchboard.auth'))")
    assert stored["access_token"] and stored["refresh_token"] and stored["user_id"]

    # An access token the API refuses (expired, say) is refreshed once, transparently.
    page.evaluate("""() => { const a = JSON.parse(sessionStorage.getItem('switchboard.auth'));
      a.access_token = 'expired'; sessionStorage.setItem('switchboard.auth', JSON.stringify(a)); }""")
    page.goto("/login")
    expect(page.locator("#who")).to_have_text("zoe@example.com")
    renewed = page.evaluate("JSON.parse(sessionStorage.getItem('switchboard.auth'))")
    assert renewed["access_token"] != "expired" and renewed["refresh_token"] != stored["refresh_token"]
    page.click("#logout")
    expect(page.locator("#signed-in")).to_be_hidden()
    page.fill("#login-email", "zoe@example.com")
    page.fill("#login-password", "not the password")
    page.click("#login button[type=submit]")
    expect(page.locator("#banner")).to_contain_text("Wrong email or password")
    page.fill("#login-password", "long enough password")
    page.click("#login button[type=submit]")
    expect(page).to_have_url(f"{up.base}/")

    # Not a moderator: the console says so. Banned: login says so.
    page.goto("/moderate")
    expect(page.locator("#banner")).to_have_text("Only moderators can use this console.")
    zoe = page.evaluate("JSON.parse(sessionStorage.getItem('switchboard.auth')).user_id")
    call_api(up, "POST", f"/moderation/accounts/{zoe}/sanctions", {"kind": "ban", "reason": "test"},
             token=admin(up)["access_token"])
    page.evaluate("sessionStorage.clear()")
    page.goto("/login")
    page.fill("#login-email", "zoe@example.com")
    page.fill("#login-password", "long enough password")
    page.click("#login button[type=submit]")
    expect(page.locator("#banner")).to_contain_text("This account cannot log in")


NO_CAMERA = """navigator.mediaDevices.getUserMedia = () =>
  Promise.reject(new DOMException("Requested device not found", "NotFoundError"));"""


def test_pages_say_when_there_is_no_camera_or_no_show(pages: Pages, up: Up) -> None:
    user = account(up, "camera-less")
    for path, button in (("/broadcast", "#start"), ("/random", "#start")):
        page = pages.open(path.strip("/"), path, user, script=NO_CAMERA)
        page.click(button)
        expect(page.locator("#banner")).to_have_text("No camera found.")
        expect(page.locator(button)).to_be_enabled()
    page = pages.open("watch", "/watch/nobody-here", user)
    expect(page.locator("#banner")).to_have_text("This show is not live (it has not started, or it ended).")
