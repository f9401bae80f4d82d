"""Simulcast from a real Chrome: headless Chromium publishes a 1280x720 canvas in three encodings
(``sendEncodings`` with rids q/h/f, scaled by 4, 2, 1) to the SFU; the SFU answers ``a=simulcast:recv``,
learns each layer's SSRC by its ``rid``, and an aiortc viewer receives and decodes the track; capped
to the lowest layer, it is moved there at a keyframe of that layer and goes on decoding, smaller.

Needs root, iproute2 and Chromium like tests/sfu/test_chromium_twcc.py (whose namespace it uses:
Chrome gathers no loopback candidates); fails, saying which, without them.
"""

from __future__ import annotations

import tempfile
from typing import Any

import pytest

from sfu.types import PeerId
from switchboard.ids import UserId
from tests.sfu.peers import Viewer, start_viewer
from tests.sfu.test_chromium_twcc import ANSWER, ROOM, ThreadedWorker, browser_in, missing, namespace, poll

pytestmark = [pytest.mark.slow, pytest.mark.chromium]

PUBLISH = """async () => {
  const canvas = document.createElement('canvas');
  canvas.width = 1280; canvas.height = 720;
  const g = canvas.getContext('2d');
  let x = 0;
  setInterval(() => { g.fillStyle = '#203040'; g.fillRect(0, 0, 1280, 720);
      g.fillStyle = '#f0e0c0'; g.fillRect(x = (x + 16) % 1280, 0, 80, 720);
      for (let i = 0; i < 60; i++) { g.fillStyle = `rgb(${Math.random() * 255},0,${Math.random() * 255})`;
        g.fillRect(Math.random() * 1280, Math.random() * 720, 32, 32); } }, 33);
  const stream = canvas.captureStream(30);
  const pc = new RTCPeerConnection();
  window.pc = pc;
  pc.addTransceiver(stream.getVideoTracks()[0], {direction: 'sendonly', streams: [stream], sendEncodings: [
    {rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150000},
    {rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500000},
    {rid: 'f', maxBitrate: 1500000}]});
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise(r => { if (pc.iceGatheringState === 'complete') r();
                           pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r(); });
  return pc.localDescription.sdp;
}"""
SENT = """async () => {
  const out = {};
  (await window.pc.getStats()).forEach(s => {
    if (s.type === 'outbound-rtp' && s.kind === 'video') out[s.rid] = [s.frameWidth, s.framesEncoded]; });
  return out;
}"""


def test_chrome_publishes_three_layers_and_a_viewer_decodes_them_switching_at_keyframes() -> None:
    problem = missing()
    if problem:
        pytest.fail(problem)  # a missing dependency fails, never skips (tests/conftest.py)
    from playwright.sync_api import sync_playwright

    with (namespace() as (ns, host_addr, _), tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw,
          browser_in(pw, ns, tmp) as browser):
        sfu = ThreadedWorker(host_addr)
        viewer: Viewer | None = None
        try:
            page = browser.new_page()
            page.goto("about:blank")
            offer = page.evaluate(PUBLISH)
            assert "a=simulcast:send q;h;f" in offer, offer
            answer = sfu.call(sfu.worker.publish(ROOM, PeerId("chrome"), UserId("user-chrome"), offer))
            assert "a=simulcast:recv q;h;f" in answer and "a=rid:f recv" in answer, answer
            page.evaluate(ANSWER, answer)
            router = sfu.worker.routers[ROOM]

            def layers() -> int:
                async def count() -> int:
                    return len(router.tracks[0].layers) if router.tracks else 0
                return int(sfu.call(count()))

            assert poll(layers, lambda n: n == 3, 40) == 3, page.evaluate(SENT)
            # one track for the room (the other layers are reached by switching), three producers underneath
            assert [p.kind for p in sfu.call(sfu.worker.room_stats(ROOM)).producers] == ["video"]
            viewer = sfu.call(start_viewer(sfu.worker, ROOM, "viewer"))
            sfu.call(viewer.wait_frames(30, timeout=40), timeout=50)
            track = router.tracks[0]
            (consumer,) = [c for c, _, _ in track.choices.values()]
            assert consumer.producer is track.layers[0]  # a viewer starts on the lowest layer

            def link() -> Any:
                return sfu.call(sfu.worker.link_stats(ROOM, PeerId("viewer")))

            # up, slowly, as the viewer's own estimate (its REMB) allows; at a keyframe of the layer above
            assert poll(lambda: consumer.producer is not track.layers[0], bool, 40), (link(), track.bitrates)
            up = consumer.switches
            frames = viewer.frames["video"]
            sfu.call(viewer.wait_frames(frames + 30, timeout=30), timeout=40)

            # the viewer asks for the lowest layer only: down at once, at that layer's keyframe
            assert sfu.call(sfu.worker.set_max_layer(ROOM, PeerId("viewer"), 0)) == 1
            assert poll(lambda: consumer.producer is track.layers[0], bool, 20), (consumer.producer, track.bitrates)
            frames = viewer.frames["video"]
            sfu.call(viewer.wait_frames(frames + 30, timeout=30), timeout=40)
            widths = sorted({w for w, _ in viewer.sizes})
            print(f"simulcast: layers {[round(b) for b in track.bitrates]} bit/s, viewer sizes {sorted(viewer.sizes)}, "
                  f"switches {consumer.switches}, link {link()}, chrome {page.evaluate(SENT)}")
            assert up >= 1 and consumer.switches > up
            assert sfu.call(sfu.worker.room_stats(ROOM)).producers[0].consumers == 1  # on whichever layer
            assert widths[0] == 320 and widths[-1] >= 640, widths  # it decoded the small and a larger layer
        finally:
            if viewer is not None:
                sfu.call(viewer.close())
            sfu.close()
