"""A socket lives no longer than its room token: with 12-second tokens, a broadcaster's and a
viewer's pages renew theirs on the open socket (``token.refresh``) and the show plays on past the
first token's expiry, with no reconnect."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import Up, account
from tests.e2e.conftest import Pages
from tests.e2e.test_browser_show import assert_playing, go_live, room_of

pytestmark = [pytest.mark.slow, pytest.mark.chromium]

RECORD_STATES = """() => { window.states = [];
  window.switchboard.signal.addEventListener("state", (e) => window.states.push(e.detail.state)); }"""


@pytest.fixture(scope="module")
def up_env() -> dict[str, str]:
    return {"SWITCHBOARD_TOKENS_ROOM_TTL_S": "12"}


def test_pages_renew_their_socket_token_before_it_expires(pages: Pages, up: Up) -> None:
    host = go_live(pages, up, "short")
    viewer = pages.open("viewer", f"/watch/{room_of(host)}", account(up, "fan-short"))
    assert_playing(viewer, "#video")
    for page in (host, viewer):
        page.evaluate(RECORD_STATES)
    first = viewer.evaluate("window.switchboard.signal.tokenExpiresAt")
    session = viewer.evaluate("window.switchboard.signal.hello.session_id")
    assert first > 0

    # Past the first token's expiry (bounded wait): renewed in place, never dropped.
    viewer.wait_for_function(f"() => Date.now() / 1000 > {first} + 3", timeout=30_000)
    assert viewer.evaluate("window.switchboard.signal.tokenExpiresAt") > first
    for page in (host, viewer):
        states = page.evaluate("window.states")
        assert "refreshed" in states and "reconnecting" not in states, states
    assert viewer.evaluate("window.switchboard.signal.hello.session_id") == session
    assert_playing(viewer, "#video")
    expect(viewer.locator("#viewers")).to_have_attribute("data-count", "1")
