"""Simulcast on a shaped link: Chromium publishes three layers from one network namespace; a
Chromium viewer in a second namespace whose downlink (the host end of its veth pair) is limited to
300 kbit/s with ``tc tbf`` gets the lowest layer and keeps decoding; an unlimited aiortc viewer on
the host goes up meanwhile; once the limit is lifted, the limited viewer goes up too.

Needs root, iproute2 and Chromium (see tests/sfu/test_chromium_twcc.py); fails, saying which, without them.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
from typing import Any

import pytest

from sfu.events import MemoryEventSink
from sfu.types import PeerId
from sfu.worker import Worker
from switchboard.ids import UserId
from tests.sfu.peers import Viewer, start_viewer
from tests.sfu.test_chromium_simulcast import PUBLISH
from tests.sfu.test_chromium_twcc import ANSWER, ROOM, VIEW, browser_in, missing, namespace, poll, sh

pytestmark = [pytest.mark.slow, pytest.mark.chromium]

LIMIT = "300kbit"
RECEIVED = """async () => {
  let out = null;
  (await window.pc.getStats()).forEach(s => {
    if (s.type === 'inbound-rtp' && s.kind === 'video')
      out = {frames: s.framesDecoded, width: s.frameWidth, freezes: s.freezeCount || 0,
             frozen_s: s.totalFreezesDuration || 0}; });
  return out;
}"""


class Sfu:
    """A Worker on two namespaces' host addresses, on its own loop in a thread."""

    def __init__(self, addresses: tuple[str, ...]) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.worker = Worker(addresses=addresses, events=MemoryEventSink())
        self.call(self.worker.start())
        self.call(self.worker.open_room(ROOM))

    def call(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.call(self.worker.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def test_a_viewer_behind_300_kbits_gets_the_low_layer_and_goes_up_when_the_limit_is_lifted() -> None:
    problem = missing()
    if problem:
        pytest.fail(problem)  # a missing dependency fails, never skips (tests/conftest.py)
    from playwright.sync_api import sync_playwright

    with namespace() as (pub_ns, pub_addr, _), namespace() as (view_ns, view_addr, view_dev), \
            tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw, \
            browser_in(pw, pub_ns, tmp) as pub_browser, browser_in(pw, view_ns, tmp) as view_browser:
        host_dev = view_dev.replace("sbn", "sbh", 1)  # the host end of the viewer's pair (see namespace())
        sfu = Sfu((pub_addr, view_addr))
        free: Viewer | None = None
        try:
            page = pub_browser.new_page()
            page.goto("about:blank")
            page.evaluate(ANSWER, sfu.call(sfu.worker.publish(ROOM, PeerId("chrome"), UserId("u-chrome"),
                                                               page.evaluate(PUBLISH))))
            router = sfu.worker.routers[ROOM]
            assert poll(lambda: len(router.tracks[0].layers) if router.tracks else 0, lambda n: n == 3, 40) == 3
            track = router.tracks[0]
            sh("tc", "qdisc", "add", "dev", host_dev, "root", "tbf", "rate", LIMIT, "burst", "16kbit",
               "latency", "300ms")
            viewer = view_browser.new_page()
            viewer.goto("about:blank")
            offer = sfu.call(sfu.worker.subscribe(ROOM, PeerId("slow"), UserId("u-slow"), hidden=False))
            sfu.call(sfu.worker.accept_answer(ROOM, PeerId("slow"), viewer.evaluate(VIEW, offer)))
            free = sfu.call(start_viewer(sfu.worker, ROOM, "free"))
            assert poll(lambda: viewer.evaluate(RECEIVED), lambda r: r is not None and r["frames"] >= 30, 40)
            consumers = poll(lambda: {c.consumer_id.split(":")[1]: c for c, _, _ in track.choices.values()},
                             lambda d: len(d) == 2, 10)
            slow, fast = consumers["slow"], consumers["free"]
            # the unlimited viewer goes up; the limited one is on the lowest layer, decoding
            assert poll(lambda: fast.producer is not track.layers[0], bool, 60), track.bitrates
            before = viewer.evaluate(RECEIVED)
            on_low = 0
            for _ in range(20):
                sfu.call(asyncio.sleep(0.5))
                on_low += slow.producer is track.layers[0]
            after = viewer.evaluate(RECEIVED)
            fps = (after["frames"] - before["frames"]) / 10
            link = sfu.call(sfu.worker.link_stats(ROOM, PeerId("slow")))
            print(f"limited viewer: {fps:.1f} fps, on the low layer {on_low}/20 samples, {after}, link {link}, "
                  f"layers {[round(b) for b in track.bitrates]}, switches {slow.switches}")
            assert after["width"] == 320 and on_low >= 15, (after, on_low)
            assert after["frames"] - before["frames"] >= 30, (before, after)  # it decodes (the rate: printed)
            sh("tc", "qdisc", "del", "dev", host_dev, "root")
            assert poll(lambda: slow.producer is not track.layers[0], bool, 60), \
                (sfu.call(sfu.worker.link_stats(ROOM, PeerId("slow"))), track.bitrates)
            print(f"lifted: the viewer went up ({viewer.evaluate(RECEIVED)}), switches {slow.switches}")
        finally:
            if free is not None:
                sfu.call(free.close())
            sfu.close()
