"""Simulcast from a real Chrome: headless Chromium publishes a 1280x720 canvas in three encodings
(``sendEncodings`` with rids q/h/f, scaled by 4, 2, 1) to the SFU; the SFU answers ``a=simulcast:recv``,
learns each layer's SSRC by its ``rid``, and an aiortc viewer receives and decodes the track, moved up
by its REMB (probed with REMB ramps) to the top layer on this unshaped link; capped to the lowest layer,
it is moved there at a keyframe of that layer and goes on decoding, smaller. Chrome's top layer may
send what one encoding may: the SFU's REMB leaves room for the lower layers on top.

Needs root, iproute2 and Chromium (tests/sfu/chromium.py: Chrome gathers no loopback candidates, so it
runs in a network namespace); fails, saying which, without them.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from bench.chromium import simulcast_publisher
from sfu.fanout_temporal import NativeTemporal
from sfu.transport_rtcp import REMB_BITRATE, publisher_remb
from sfu.types import PeerId
from switchboard.ids import UserId
from tests.sfu.chromium import ANSWER, ROOM, chromium_in_namespaces, poll
from tests.sfu.peers import Viewer, start_viewer

pytestmark = [pytest.mark.slow, pytest.mark.chromium]

PUBLISH = simulcast_publisher(squares=60)
SENT = """async () => {
  const out = {};
  (await window.pc.getStats()).forEach(s => {
    if (s.type === 'outbound-rtp' && s.kind === 'video') out[s.rid] = [s.frameWidth, s.framesEncoded]; });
  return out;
}"""
TOP = """async () => {
  let available = null, top = null;
  (await window.pc.getStats()).forEach(s => {
    if (s.type === 'outbound-rtp' && s.kind === 'video' && s.rid === 'f') top = s.targetBitrate ?? null;
    if (s.type === 'candidate-pair' && s.nominated && s.availableOutgoingBitrate !== undefined)
      available = s.availableOutgoingBitrate; });
  return [available, top];
}"""


def test_chrome_publishes_three_layers_and_a_viewer_decodes_them_switching_at_keyframes() -> None:
    with chromium_in_namespaces(1) as (sfu, [chrome]):
        viewer: Viewer | None = None
        try:
            page = chrome.browser.new_page()
            page.goto("about:blank")
            offer = page.evaluate(PUBLISH)
            assert "a=simulcast:send q;h;f" in offer, offer
            answer = sfu.call(sfu.worker.publish(ROOM, PeerId("chrome"), UserId("user-chrome"), offer))
            assert "a=simulcast:recv q;h;f" in answer and "a=rid:f recv" in answer, answer
            page.evaluate(ANSWER, answer)
            router = sfu.worker.routers[ROOM]
            assert poll(sfu.layers, lambda n: n == 3, 40) == 3, page.evaluate(SENT)
            # one track for the room (the other layers are reached by switching), three producers underneath
            assert [p.kind for p in sfu.call(sfu.worker.room_stats(ROOM)).producers] == ["video"]
            viewer = sfu.call(start_viewer(sfu.worker, ROOM, "viewer"))
            sfu.call(viewer.wait_frames(30, timeout=40), timeout=50)
            track = router.tracks[0]
            (consumer,) = [c for c, _, _ in track.choices.values()]
            assert consumer.producer is track.layers[0]  # a viewer starts on the lowest layer
            # Chrome's layers carry temporal layers (L1T3); on the native plane fo_fanout filters them
            assert consumer.temporal is not None and consumer.temporal.seen
            assert isinstance(consumer.temporal, NativeTemporal) == (sfu.worker.plane is not None)

            def link() -> Any:
                return sfu.call(sfu.worker.link_stats(ROOM, PeerId("viewer")))

            # up as the viewer's own estimate (its REMB: aiortc sends no transport-cc) allows, REMB ramps
            # (RTX copies stamped with abs-send-time) raising it one layer at a time, to the top on this
            # unshaped link; each step at a keyframe of the layer above
            assert poll(lambda: consumer.producer is not track.layers[0], bool, 60), (link(), track.bitrates)
            assert poll(lambda: consumer.producer is track.layers[2], bool, 120), (link(), track.bitrates)
            up = consumer.switches
            frames = viewer.frames["video"]
            sfu.call(viewer.wait_frames(frames + 30, timeout=30), timeout=40)
            assert max(w for w, _ in viewer.sizes) == 1280, sorted(viewer.sizes)  # it decoded the top layer

            # the viewer asks for the lowest layer only: down at once, at that layer's keyframe
            assert sfu.call(sfu.worker.set_max_layer(ROOM, PeerId("viewer"), 0)) == 1
            assert poll(lambda: consumer.producer is track.layers[0], bool, 20), (consumer.producer, track.bitrates)
            frames = viewer.frames["video"]
            sfu.call(viewer.wait_frames(frames + 30, timeout=30), timeout=40)
            widths = sorted({w for w, _ in viewer.sizes})
            print(f"simulcast: layers {[round(b) for b in track.bitrates]} bit/s, viewer sizes {sorted(viewer.sizes)}, "
                  f"switches {consumer.switches}, link {link()}, chrome {page.evaluate(SENT)}")
            assert up >= 2 and consumer.switches > up
            assert sfu.call(sfu.worker.room_stats(ROOM)).producers[0].consumers == 1  # on whichever layer
            assert widths[0] == 320 and widths[-1] >= 640, widths  # it decoded the small and a larger layer
        finally:
            if viewer is not None:
                sfu.call(viewer.close())


def test_chromes_top_layer_is_allowed_what_one_encoding_is() -> None:
    """Chrome gives its layers the REMB lowest first and the top one the rest. Under a flat REMB of
    ``REMB_BITRATE`` (2 Mbit/s) its estimate stopped there and the top layer's target under 2 Mbit/s
    less the lower layers' 650 kbit/s; a single encoding of 1.5 Mbit/s got all of it. Now the SFU adds
    the lower layers' measured rates: Chrome's estimate goes past 2 Mbit/s and the top layer's target
    to its own ``maxBitrate`` (1.5 Mbit/s), as one encoding's does, and stays there (not only while
    the first keyframes swell the lower layers' measured rates)."""
    with chromium_in_namespaces(1) as (sfu, [chrome]):
        page = sfu.publish_page(chrome.browser, simulcast_publisher(squares=6))
        track = sfu.simulcast_track()

        async def remb() -> int:
            return publisher_remb(sfu.worker.routers[ROOM].transports[PeerId("chrome")].producers.values())

        def settled(rates: list[float]) -> bool:  # every layer measured, in the order of their sizes
            return 0 < rates[0] < rates[1] < rates[2]

        assert settled(poll(lambda: list(track.bitrates), settled, 40)), track.bitrates
        held, samples = 0, []
        for _ in range(120):  # 10 samples in a row (5 s), within 60 s
            available, top = page.evaluate(TOP)
            samples.append((available, top, sfu.call(remb()), [round(b) for b in track.bitrates]))
            ok = available is not None and available > REMB_BITRATE and (top or 0) >= 1_400_000
            held = held + 1 if ok else 0
            if held == 10:
                break
            time.sleep(0.5)
        available, top, told, rates = samples[-1]
        print(f"top layer: availableOutgoingBitrate {available}, f targetBitrate {top}, REMB {told}, "
              f"layers {rates} bit/s, after {len(samples)} samples")
        assert held == 10, samples[-12:]
        assert told > REMB_BITRATE + 300_000, samples[-1]  # the lower layers are measured and added
