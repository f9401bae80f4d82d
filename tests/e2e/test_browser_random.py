"""Random chat in real Chromium: two /random pages are matched, each plays the other's camera over
a peer-to-peer connection (``node.match_media = p2p`` here: the SFU carries nothing; the default,
``sfu``, is tests/e2e/test_browser_random_sfu.py), chat crosses, and `next` re-queues both."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import Up, account, admin, call_api
from tests.e2e.conftest import Pages
from tests.e2e.test_browser_show import assert_playing

pytestmark = [pytest.mark.slow, pytest.mark.chromium]


@pytest.fixture(scope="module")
def up_env() -> dict[str, str]:
    return {"SWITCHBOARD_NODE_MATCH_MEDIA": "p2p"}

SELECTED_PAIR = """() => window.switchboard.pc.getStats().then(stats => {
  const transport = [...stats.values()].find(s => s.type === "transport" && s.selectedCandidatePairId);
  const pair = transport && stats.get(transport.selectedCandidatePairId);
  return pair ? [stats.get(pair.localCandidateId).port, stats.get(pair.remoteCandidateId).port] : null;
})"""


def test_two_strangers_are_matched_see_each_other_and_next_requeues(pages: Pages, up: Up) -> None:
    ann, bob = account(up, "ann-random"), account(up, "bob-random")
    a = pages.open("ann", "/random", ann)
    b = pages.open("bob", "/random", bob)
    a.fill("#tags", "music")
    a.click("#start")
    expect(a.locator("#state")).to_have_attribute("data-state", "looking")  # alone in the queue
    b.click("#start")
    for page in (a, b):
        expect(page.locator("#state")).to_have_attribute("data-state", "connected")
        assert_playing(page, "#remote")

    # Peer to peer: each side's selected pair ends at the other browser's own port.
    a_pairs, b_pairs = a.evaluate(SELECTED_PAIR), b.evaluate(SELECTED_PAIR)
    assert a_pairs and b_pairs and a_pairs == b_pairs[::-1], (a_pairs, b_pairs)
    assert bob["user_id"][:8] in a.locator("#peer").inner_text()

    a.fill("#chat-text", "hello bob")
    a.press("#chat-text", "Enter")
    expect(b.locator("#chat")).to_contain_text("hello bob")
    b.click("#like")
    expect(a.locator("#chat")).to_contain_text("liked you")
    b.select_option("#report-reason", "spam_scam")
    b.click("#report")
    expect(b.locator("#banner")).to_contain_text("the moderators will look at it")
    reports = call_api(up, "GET", "/moderation/reports", token=admin(up)["access_token"])["items"]
    assert [(r["user_id"], r["reporter_id"], r["reason"]) for r in reports] == [
        (ann["user_id"], bob["user_id"], "spam_scam")]
    assert reports[0]["session_id"] == b.evaluate("window.switchboard.match.session_id")

    session = a.evaluate("window.switchboard.signal.hello.session_id")
    a.click("#next")
    for page in (a, b):
        # Both wait in the queue again (the two may not meet again within the rematch window).
        expect(page.locator("#state")).to_have_attribute("data-state", "looking")
        assert page.evaluate("window.switchboard.pc") is None
    expect(b.locator("#banner")).to_contain_text("The stranger left")
    assert a.evaluate("window.switchboard.signal.hello.session_id") == session
    a.wait_for_function("() => window.switchboard.queued?.next === 'requeued'", timeout=10_000)
    b.wait_for_function("() => window.switchboard.queued?.join === true", timeout=10_000)

    # Both really are in the queue: a newcomer is matched with one of them at once.
    cat = pages.open("cat", "/random", account(up, "cat-random"))
    cat.click("#start")
    expect(cat.locator("#state")).to_have_attribute("data-state", "connected")
    assert_playing(cat, "#remote")
    partner = cat.locator("#peer").inner_text()
    assert any(user["user_id"][:8] in partner for user in (ann, bob)), partner
