"""Shows in real Chromium against a real ``switchboard up``: the broadcaster publishes the fake
camera, two viewers play it and everyone sees the count 2; a moderator's invisible tap plays it
without changing any count or roster; a viewer whose page reloads resumes its session."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import Up, account, admin
from tests.e2e.conftest import Pages

pytestmark = [pytest.mark.slow, pytest.mark.chromium]

PLAYING = """sel => { const v = document.querySelector(sel);
  return v && v.videoWidth > 0 && v.getVideoPlaybackQuality().totalVideoFrames > 0; }"""
FRAMES = "sel => document.querySelector(sel).getVideoPlaybackQuality().totalVideoFrames"
VIDEO_ENABLED = "window.switchboard.pc.getSenders().find(s => s.track?.kind === 'video').track.enabled"
ADVANCED = "([sel, n]) => document.querySelector(sel).getVideoPlaybackQuality().totalVideoFrames > n"


def assert_playing(page: Any, selector: str) -> None:
    """The video has a size and its decoded frame count keeps advancing (bounded waits)."""
    page.wait_for_function(PLAYING, arg=selector, timeout=30_000)
    seen = page.evaluate(FRAMES, selector)
    page.wait_for_function(ADVANCED, arg=[selector, seen + 10], timeout=20_000)
    assert page.evaluate(f"document.querySelector('{selector}').videoWidth") > 0


def go_live(pages: Pages, up: Up, title: str) -> Any:
    """A broadcaster live with the fake camera; the room is made by the API (``room_of`` names it)."""
    host = pages.open("broadcaster", "/broadcast", account(up, f"host-{title}"))
    host.fill("#title", title)
    host.click("#start")
    expect(host.locator("#banner")).to_have_text("You are live.")
    assert_playing(host, "#preview")
    room = room_of(host)
    assert re.fullmatch(r"show-[a-z2-7]{26}", room), room  # server-chosen: nothing like the title or the user id
    expect(host.locator("#share")).to_have_attribute("href", re.compile(f"/watch/{room}$"))
    return host


def room_of(host: Any) -> str:
    """The room of a live broadcaster's page (its watch link)."""
    return str(host.locator("#share").get_attribute("data-room"))


def test_two_viewers_play_the_show_and_a_tap_stays_invisible(pages: Pages, up: Up) -> None:
    host = go_live(pages, up, "stage1")
    room = room_of(host)
    viewers = [pages.open(f"viewer{i}", f"/watch/{room}", account(up, f"fan{i}-stage1")) for i in (1, 2)]
    for page in viewers:
        assert_playing(page, "#video")
        expect(page.locator("#title")).to_have_text("stage1")  # the title is shown, the name is the link
    for page in (host, *viewers):
        expect(page.locator("#viewers")).to_have_attribute("data-count", "2")
    fans = {account(up, f"fan{i}-stage1")["user_id"] for i in (1, 2)}
    assert set((host.locator("#roster").get_attribute("data-users") or "").split()) == fans
    viewers[0].fill("#chat-text", "hello from fan1")
    viewers[0].press("#chat-text", "Enter")
    for page in (host, viewers[1]):
        expect(page.locator("#chat")).to_contain_text("hello from fan1")
    # The quality hint is shown (which label depends on the machine's load: not asserted).
    expect(viewers[1].locator("#quality")).to_have_attribute("data-quality", re.compile("^(good|fair|poor)$"))
    expect(viewers[1].locator("#quality")).to_contain_text(re.compile(r"\d+ ms · \d+\.\d% loss"))
    host.click("#camera")
    assert host.evaluate(VIDEO_ENABLED) is False
    host.click("#camera")
    assert host.evaluate(VIDEO_ENABLED) is True
    updates = host.evaluate("window.switchboard.rosterUpdates")

    moderator = pages.open("moderator", "/moderate", admin(up))
    row = moderator.locator(f"tr[data-room=\"{room}\"]")
    expect(row).to_contain_text("2")
    row.locator("button.watch").click()
    assert_playing(moderator, "#video")
    expect(moderator.locator("#viewers")).to_have_attribute("data-count", "2")

    # Nobody saw the tap: same counts, same roster, not one roster message since it opened;
    # and everyone still plays.
    for page in (host, *viewers):
        expect(page.locator("#viewers")).to_have_attribute("data-count", "2")
    assert set((host.locator("#roster").get_attribute("data-users") or "").split()) == fans
    assert host.evaluate("window.switchboard.rosterUpdates") == updates
    assert admin(up)["user_id"] not in (host.locator("#roster").get_attribute("data-users") or "")
    for page in viewers:
        assert_playing(page, "#video")


def test_a_reloaded_viewer_resumes_its_session(pages: Pages, up: Up) -> None:
    host = go_live(pages, up, "stage2")
    viewer = pages.open("viewer", f"/watch/{room_of(host)}", account(up, "fan-stage2"))
    assert_playing(viewer, "#video")
    expect(host.locator("#viewers")).to_have_attribute("data-count", "1")
    session = viewer.evaluate("window.switchboard.signal.hello.session_id")
    updates = host.evaluate("window.switchboard.rosterUpdates")

    viewer.reload()
    expect(viewer.locator("#banner")).to_have_text("Resumed.")
    assert viewer.evaluate("window.switchboard.signal.hello.resumed") is True
    assert viewer.evaluate("window.switchboard.signal.hello.session_id") == session
    assert_playing(viewer, "#video")
    expect(viewer.locator("#viewers")).to_have_attribute("data-count", "1")
    # The broadcaster never saw the viewer leave: its session lived through the reload.
    assert host.evaluate("window.switchboard.rosterUpdates") == updates

    # A network blip (the socket drops, the media does not): the page reconnects and resumes.
    viewer.evaluate("window.switchboard.signal.ws.close()")
    expect(viewer.locator("#banner")).to_have_text("Reconnected.")
    assert viewer.evaluate("window.switchboard.signal.hello.session_id") == session
    assert_playing(viewer, "#video")
    assert host.evaluate("window.switchboard.rosterUpdates") == updates

    # A clean hang-up: the viewer leaves at once (no resume window) and the count drops.
    viewer.click("#leave")
    expect(viewer.locator("#banner")).to_have_text("You left the show.")
    expect(host.locator("#viewers")).to_have_attribute("data-count", "0")


def test_a_reloaded_broadcaster_keeps_its_show_and_viewers_get_the_new_camera(pages: Pages, up: Up) -> None:
    host = go_live(pages, up, "stage3")
    room = room_of(host)
    viewer = pages.open("viewer", f"/watch/{room}", account(up, "fan-stage3"))
    assert_playing(viewer, "#video")
    tracks = viewer.evaluate("window.switchboard.subscriber.tracksReceived")
    updates = viewer.evaluate("window.switchboard.signal.hello.session_id")

    host.reload()  # the page resumes its session and publishes from a new peer connection
    expect(host.locator("#banner")).to_have_text("You are live.")
    expect(host.locator("#viewers")).to_have_attribute("data-count", "1")
    viewer.wait_for_function(f"() => window.switchboard.subscriber.tracksReceived > {tracks}", timeout=30_000)
    assert_playing(viewer, "#video")
    assert viewer.evaluate("document.querySelector('#video').srcObject.getVideoTracks()[0].muted") is False
    expect(viewer.locator("#viewers")).to_have_attribute("data-count", "1")
    assert viewer.evaluate("window.switchboard.signal.hello.session_id") == updates
    assert room_of(host) == room  # the reloaded page resumed its own room, it did not make another
