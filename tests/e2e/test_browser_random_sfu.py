"""Random chat with ``node.call_media = "sfu"`` in real Chromium: two /random pages are matched and
each plays the other's camera through the node's SFU; a moderator's /moderate page lists the session
and taps it invisibly (both pictures play, the parties' SDP stays the same); stopping closes the tap."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import Up, account, admin
from tests.e2e.conftest import Pages
from tests.e2e.test_browser_random import SELECTED_PAIR
from tests.e2e.test_browser_show import assert_playing

pytestmark = [pytest.mark.slow, pytest.mark.chromium]

REMOTE_SDP = "() => window.switchboard.pc.remoteDescription.sdp"


@pytest.fixture(scope="module")
def up_env() -> dict[str, str]:
    return {"SWITCHBOARD_NODE_CALL_MEDIA": "sfu"}  # matches go through the SFU by default; calls too here


def test_strangers_meet_through_the_sfu_and_a_moderator_taps_unseen(pages: Pages, up: Up) -> None:
    ann, bob = account(up, "ann-sfu"), account(up, "bob-sfu")
    a = pages.open("ann", "/random", ann)
    b = pages.open("bob", "/random", bob)
    a.click("#start")
    expect(a.locator("#state")).to_have_attribute("data-state", "looking")
    b.click("#start")
    for page in (a, b):
        expect(page.locator("#state")).to_have_attribute("data-state", "connected", timeout=30_000)
        assert_playing(page, "#remote")
        assert page.evaluate("window.switchboard.match.media") == "sfu"
    # Through the SFU: neither browser's selected pair ends at the other browser.
    a_pair, b_pair = a.evaluate(SELECTED_PAIR), b.evaluate(SELECTED_PAIR)
    assert a_pair and b_pair and a_pair != b_pair[::-1], (a_pair, b_pair)
    sdp = [a.evaluate(REMOTE_SDP), b.evaluate(REMOTE_SDP)]

    moderator = pages.open("moderator", "/moderate", admin(up))
    row = moderator.locator("tr[data-media=sfu]")
    expect(row).to_contain_text(ann["user_id"][:8])
    expect(row).to_contain_text(bob["user_id"][:8])
    row.locator("button.watch").click()
    assert_playing(moderator, "#video")
    assert_playing(moderator, "#video2")

    # The parties saw nothing: the same offers from the SFU, and both still play.
    assert [a.evaluate(REMOTE_SDP), b.evaluate(REMOTE_SDP)] == sdp
    for page in (a, b):
        assert_playing(page, "#remote")

    a.click("#stop")
    expect(moderator.locator("#banner")).to_contain_text("The call ended")
    expect(moderator.locator("#tap")).to_be_hidden()
