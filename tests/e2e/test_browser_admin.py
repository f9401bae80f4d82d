"""The /admin console in real Chromium against a real ``switchboard up``: a report made from
/random is opened and the reported user banned from the console, and that user's open page shows
the ban; in a show, a hidden moderator deletes a chat line and mutes a viewer, and the other pages
reflect it. The screenshots of docs/moderation.md are taken here (test-output/screenshots/; docs/img/
with ``SWITCHBOARD_UPDATE_DOC_SCREENSHOTS=1``)."""

from __future__ import annotations

import io
import urllib.request
from datetime import datetime, timedelta
from typing import Any

import av
import pytest
from playwright.sync_api import expect

from tests.e2e.browser import Up, account, admin, call_api, doc_screenshot
from tests.e2e.conftest import Pages
from tests.e2e.test_browser_show import assert_playing, go_live, room_of

pytestmark = [pytest.mark.slow, pytest.mark.chromium]

PLAYED = "([sel, s]) => document.querySelector(sel).currentTime > s"


def fetch(up: Up, url: str, token: str) -> bytes:
    request = urllib.request.Request(f"{up.base}{url}", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return resp.read()  # type: ignore[no-any-return]


def check_remuxed(data: bytes) -> None:
    """The report's clip from Chromium's real VP8 and Opus, checked with PyAV: the codecs, the first
    video frame a keyframe, every frame decodes, audio and video start within 100 ms."""
    with av.open(io.BytesIO(data)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert (video.codec_context.name, audio.codec_context.name) == ("vp8", "opus")
        firsts: dict[str, float] = {}
        for packet in container.demux(video, audio):
            if packet.size == 0:
                continue
            if packet.stream.type not in firsts:
                firsts[packet.stream.type] = float(packet.pts * packet.time_base)
                assert packet.stream.type != "video" or packet.is_keyframe
            packet.decode()
    assert abs(firsts["video"] - firsts["audio"]) <= 0.1, firsts


def shot(page: Any, name: str) -> None:
    """A screenshot for docs/moderation.md."""
    doc_screenshot(page, name)


def test_an_admin_bans_a_user_reported_from_random_and_their_page_shows_it(pages: Pages, up: Up) -> None:
    """Two users matched in /random through the SFU (the default for matches); one reports the other
    from the page, which makes the session's evidence clip by itself; the admin opens the report in
    /admin, plays the clip, bans the reported user, and that user's open page shows the ban pushed
    by the node (the close with 4003: no reconnect, no reload)."""
    ann, bob = account(up, "ann-admin"), account(up, "bob-admin")
    a = pages.open("ann", "/random", ann)
    b = pages.open("bob", "/random", bob)
    a.click("#start")
    expect(a.locator("#state")).to_have_attribute("data-state", "looking")
    b.click("#start")
    for page in (a, b):
        expect(page.locator("#state")).to_have_attribute("data-state", "connected")
    assert b.evaluate("window.switchboard.match.media") == "sfu"
    session_id = b.evaluate("window.switchboard.match.session_id")
    # A few seconds of Ann's video on Bob's screen: what the SFU buffered is what the clip holds.
    b.wait_for_function(PLAYED, arg=["#remote", 3])
    b.select_option("#report-reason", "harassment")
    b.click("#report")
    expect(b.locator("#banner")).to_contain_text("the moderators will look at it")

    console = pages.open("admin", "/admin", admin(up))
    expect(console.locator("[data-figure=open] b")).not_to_have_text("")
    shot(console, "admin-dashboard.png")
    console.click("#tabs a[data-tab=reports]")
    row = console.locator("#report-rows tr", has_text=ann["user_id"][:8]).first
    expect(row).to_contain_text("harassment")
    row.locator("button", has_text="Open").click()
    expect(console.locator("#report-detail")).to_contain_text(f"call or random chat {session_id}")
    # The report's own clip (no moderator asked): the console shows it once the API has stored it.
    clip = console.locator("#report-clip")
    expect(clip).to_be_visible()
    expect(console.locator("#save-clip")).to_be_hidden()
    clip.evaluate("(v) => v.play()")
    console.wait_for_function(PLAYED, arg=["#report-clip", 1])
    assert clip.evaluate("(v) => v.videoWidth") > 0
    console.click("#claim")
    expect(console.locator("#banner")).to_contain_text("You are reviewing report")
    expect(console.locator("#report-detail")).to_contain_text("in_review (claimed by you)")
    console.fill("#act-reason", "Insults in random chat.")
    shot(console, "admin-report.png")
    report_id = int(console.locator("#report-id").inner_text().lstrip("#"))
    token = admin(up)["access_token"]
    seen = call_api(up, "GET", f"/moderation/reports/{report_id}", token=token)
    stored = call_api(up, "GET", f"/moderation/clips/{seen['clip']['id']}", token=token)
    assert (stored["room"], stored["content_type"], stored["moderator_id"]) == (session_id, "video/webm", None)
    assert stored["tracks"] >= 2, stored  # video and audio (each user's video from its first keyframe in the window)
    check_remuxed(fetch(up, stored["url"], token))

    # Ann's page records its connection states from here on: the ban must arrive as the node's push.
    a.evaluate("window.states = []; window.switchboard.signal.addEventListener('state', "
               "(e) => window.states.push(e.detail.state))")
    console.click("#report-actions button[data-kind=ban][data-duration='24h']")
    expect(console.locator("#banner")).to_contain_text("actioned: ban 24h")
    expect(console.locator("#report")).to_have_attribute("data-status", "actioned")

    # Ann's open page is told at once (her socket is closed with 4003 on every node).
    expect(a.locator("#banner")).to_contain_text("This account is banned")
    assert a.evaluate("window.states") == ["banned"], "the first state after the ban is the node's 4003 close"
    shot(a, "user-banned.png")
    reports = call_api(up, "GET", f"/moderation/reports?user_id={ann['user_id']}", token=token)
    assert [r["status"] for r in reports["items"]] == ["actioned"]

    console.click("#tabs a[data-tab=sanctions]")
    sanction = console.locator("#sanction-rows tr", has_text=ann["user_id"][:8])
    expect(sanction).to_contain_text("ban")
    shot(console, "admin-sanctions.png")
    console.click("#tabs a[data-tab=audit]")
    expect(console.locator("#audit-rows tr[data-action='report.actioned']").first).to_be_visible()
    expect(console.locator("#audit-rows tr[data-action='sanction.ban']").first).to_be_visible()
    shot(console, "admin-audit.png")
    # Lifting from the console: the ban is gone from the active list.
    console.click("#tabs a[data-tab=sanctions]")
    console.fill("#lift-reason", "appeal accepted")
    sanction.locator("button", has_text="Lift").click()
    expect(console.locator("#banner")).to_contain_text("was lifted")
    expect(console.locator("#sanction-rows tr", has_text=ann["user_id"][:8])).to_have_count(0)


def test_a_hidden_moderator_deletes_a_line_and_mutes_a_viewer(pages: Pages, up: Up) -> None:
    host = go_live(pages, up, "modshow")
    room = room_of(host)
    fans = [pages.open(f"fan{i}", f"/watch/{room}", account(up, f"fan{i}-modshow")) for i in (1, 2)]
    for page in fans:
        assert_playing(page, "#video")
    fans[0].fill("#chat-text", "buy cheap coins at example.com")
    fans[0].press("#chat-text", "Enter")
    for page in (host, fans[1]):
        expect(page.locator("#chat")).to_contain_text("buy cheap coins")

    console = pages.open("moderator", "/admin#live", admin(up))
    console.locator(f"tr[data-room=\"{room}\"] button.watch").click()
    assert_playing(console, "#video")
    fans[0].fill("#chat-text", "hello again")
    fans[0].press("#chat-text", "Enter")
    spam = console.locator("#chat li", has_text="buy cheap coins")
    again = console.locator("#chat li", has_text="hello again")
    expect(again).to_be_visible()  # the tap sees lines said after it opened
    assert spam.count() == 0  # a line said before the tap opened is not replayed to it
    again.locator("button[data-action=delete]").click()
    for page in (host, fans[1], fans[0]):
        expect(page.locator("#chat li", has_text="hello again")).to_have_count(0)

    fans[0].fill("#chat-text", "you cannot silence me")
    fans[0].press("#chat-text", "Enter")
    line = console.locator("#chat li", has_text="you cannot silence me")
    line.locator("button[data-action=mute]").click()
    for page in (host, fans[1]):
        expect(page.locator("#chat li[data-notice='show.muted']")).to_contain_text("by the moderator")
    expect(fans[0].locator("#banner")).to_contain_text("You are muted in this show")
    fans[0].fill("#chat-text", "still talking")
    fans[0].press("#chat-text", "Enter")
    expect(fans[0].locator("#banner")).to_contain_text("You cannot chat")
    expect(fans[1].locator("#chat")).not_to_contain_text("still talking")
    shot(console, "admin-live.png")
    shot(fans[1], "viewer-moderated-chat.png")
    # The moderator never appeared: the viewer count is the two fans.
    for page in (host, *fans):
        expect(page.locator("#viewers")).to_have_attribute("data-count", "2")


THANKS = "Thank you: the moderators will look at it."
MUTES = ["1h", "24h", "30d", "permanent"]
"""Every mute length the API takes (control_api/sanctions.py DURATIONS)."""


def test_reports_from_a_show_and_a_message_reach_the_console_and_a_users_sanction_history(pages: Pages,
                                                                                         up: Up) -> None:
    """A viewer reports the live show from /watch (a ``room`` context) and a user reports a message
    from the /messages thread (a ``message_id`` context); the console lists both with their context
    and shows the message's text. From the report the moderator mutes for one of the four lengths the
    API takes and opens the user's whole sanction history (lifted ones too); the sanctions tab opens it
    for an active row and for any user id."""
    host = go_live(pages, up, "reported")
    room = room_of(host)
    owner = account(up, "host-reported")
    viewer = pages.open("viewer", f"/watch/{room}", account(up, "viv-reported"))
    assert_playing(viewer, "#video")
    viewer.select_option("#report-reason", "nudity_minor")
    viewer.click("#report")
    expect(viewer.locator("#banner")).to_have_text(THANKS)
    shot(viewer, "report-show.png")

    carl, dan = account(up, "carl-reported"), account(up, "dan-reported")
    conv = call_api(up, "POST", "/conversations", {"members": [dan["user_id"]]}, token=carl["access_token"])
    said = call_api(up, "POST", f"/conversations/{conv['id']}/messages", {"text": "send me your card number"},
                    token=carl["access_token"])
    d = pages.open("dan", f"/messages#{conv['id']}", dan)
    line = d.locator(f"#thread li[data-id='{said['id']}']")
    expect(line).to_contain_text("send me your card number")
    line.get_by_role("button", name="Report").click()
    expect(line.get_by_label("Report reason")).to_be_focused()
    line.get_by_label("Report reason").select_option("spam_scam")
    shot(d, "report-message.png")
    line.get_by_role("button", name="Send report").click()
    expect(d.locator("#banner")).to_have_text(THANKS)
    expect(line.locator(".reported")).to_have_text("Reported")

    # Carl's earlier record: a warning, and a ban that was lifted.
    token = admin(up)["access_token"]
    sanctions = f"/moderation/accounts/{carl['user_id']}/sanctions"
    call_api(up, "POST", sanctions, {"kind": "warning", "reason": "first warning"}, token=token)
    ban = call_api(up, "POST", sanctions, {"kind": "ban", "duration": "1h", "reason": "old ban"}, token=token)
    call_api(up, "POST", f"/moderation/sanctions/{ban['id']}/lift", {"reason": "appeal accepted"}, token=token)

    console = pages.open("admin", "/admin#reports", admin(up))
    show_row = console.locator("#report-rows tr", has_text=f"show {room}")
    expect(show_row).to_contain_text("nudity_minor")
    expect(show_row).to_contain_text(owner["user_id"][:8])
    message_row = console.locator("#report-rows tr", has_text=f"message {said['id']}")
    expect(message_row).to_contain_text("spam_scam")
    expect(message_row).to_contain_text(carl["user_id"][:8])
    assert console.locator("#filter-reason option").all_inner_texts()[0] == "Any reason"
    assert console.locator("#filter-reason option").count() == 6  # any + the five of lib/report.js

    # The show's report: a mute until lifted on the broadcaster.
    show_row.locator("button", has_text="Open").click()
    expect(console.locator("#report-detail")).to_contain_text(f"show {room}")
    expect(console.locator("#report-clip")).to_be_visible()  # the report on the live show made its clip
    assert sorted(console.locator("#report-actions button[data-kind=mute]").evaluate_all(
        "(bs) => bs.map((b) => b.dataset.duration)")) == sorted(MUTES)
    console.click("#report-actions button[data-kind=mute][data-duration=permanent]")
    expect(console.locator("#banner")).to_contain_text("actioned: mute permanent")
    expect(console.locator("#report")).to_have_attribute("data-status", "actioned")

    # The message's report: its text in the context, a 30-day mute, then the whole history.
    message_row.locator("button", has_text="Open").click()
    expect(console.locator("#report-detail")).to_contain_text("a chat message")
    expect(console.locator("#report-detail")).to_contain_text("send me your card number")
    console.fill("#act-reason", "Scam attempt in messages.")
    console.click("#report-actions button[data-kind=mute][data-duration='30d']")
    expect(console.locator("#banner")).to_contain_text("actioned: mute 30d")
    console.click("#report-history")
    history = console.locator("#report-history-list li")
    expect(history).to_have_count(3)
    expect(history.nth(0)).to_have_attribute("data-kind", "mute")
    expect(history.nth(0)).to_contain_text("Scam attempt in messages.")
    expect(history.nth(0)).to_have_attribute("data-active", "true")
    expect(history.nth(1)).to_contain_text("lifted")
    expect(history.nth(1)).to_contain_text("appeal accepted")
    expect(history.nth(2)).to_have_attribute("data-kind", "warning")
    expect(history.nth(2)).to_contain_text("given")
    shot(console, "admin-history.png")
    record = call_api(up, "GET", sanctions, token=token)["items"]
    mute = record[0]
    assert (mute["kind"], mute["active"]) == ("mute", True)
    length = datetime.fromisoformat(mute["ends_at"]) - datetime.fromisoformat(mute["starts_at"])
    assert length == timedelta(days=30), length
    owners = call_api(up, "GET", f"/moderation/accounts/{owner['user_id']}/sanctions", token=token)["items"]
    assert [(s["kind"], s["ends_at"], s["active"]) for s in owners] == [("mute", None, True)]

    # The sanctions tab: History on an active row, then any user by id (after the lift).
    console.click("#tabs a[data-tab=sanctions]")
    row = console.locator("#sanction-rows tr", has_text=carl["user_id"][:8]).filter(has_text="mute")
    row.locator("button", has_text="History").click()
    expect(console.locator("#history-of")).to_have_text(carl["user_id"])
    expect(console.locator("#history-list li")).to_have_count(3)
    console.fill("#lift-reason", "paid back")
    row.locator("button", has_text="Lift").click()
    expect(console.locator("#banner")).to_contain_text("was lifted")
    console.fill("#history-user", carl["user_id"])
    console.click("#history-form button[type=submit]")
    expect(console.locator("#history-list li").first).to_contain_text("paid back")
    expect(console.locator("#history-list li").first).to_have_attribute("data-active", "false")
    console.fill("#history-user", dan["user_id"])
    console.press("#history-user", "Enter")
    expect(console.locator("#history-list li")).to_have_text(["No sanction, ever."])


def test_a_moderator_saves_a_clip_of_a_live_show_from_the_live_tab(pages: Pages, up: Up) -> None:
    """No report needed: the live tab's "Save clip" on a show stores its last seconds (the
    moderator's clip) and the console plays it."""
    host = go_live(pages, up, "clipped")
    room = room_of(host)
    fan = pages.open("fan", f"/watch/{room}", account(up, "fan-clipped"))
    # A few seconds of the show through the SFU: what it buffered is what the clip holds.
    fan.wait_for_function(PLAYED, arg=["#video", 3])
    console = pages.open("moderator", "/admin#live", admin(up))
    console.locator(f"tr[data-room=\"{room}\"] button.save-clip").click()
    expect(console.locator("#banner")).to_contain_text(f"Clip of the show {room} saved.")
    clip = console.locator("#live-clip")
    expect(clip).to_be_visible()
    expect(console.locator("#live-clip-room")).to_have_text(f"the show {room}")
    clip.evaluate("(v) => v.play()")
    console.wait_for_function(PLAYED, arg=["#live-clip", 1])
    assert clip.evaluate("(v) => v.videoWidth") > 0
    shot(console, "admin-live-clip.png")
    token = admin(up)["access_token"]
    stored = call_api(up, "GET", f"/moderation/clips/{clip.get_attribute('data-clip')}", token=token)
    assert (stored["room"], stored["moderator_id"]) == (room, admin(up)["user_id"]), stored
    check_remuxed(fetch(up, stored["url"], token))
