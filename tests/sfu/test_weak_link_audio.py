"""A viewer on a very weak link keeps its audio when its video stops: Chromium publishes Opus (its fake
tone) and three VP8 layers from one namespace; a Chromium viewer in a second namespace whose
downlink is limited to 80 kbit/s (``tc tbf``) has its video paused by the SFU (not even the lowest
layer's fewest frames fit beside the audio) and goes on receiving and playing audio: over 10 s its
``inbound-rtp`` audio counts ~50 packets a second and conceals under a fifth of its samples, while
its video decodes (nearly) nothing. The audio it gets carries the ``audio-level`` extension at the
viewer's own id.

Needs root, iproute2 and Chromium (see tests/sfu/chromium.py); fails, saying which, without them.
"""

from __future__ import annotations

import time

import pytest

from bench import netns
from bench.chromium import simulcast_publisher
from sfu import extensions
from sfu.types import PeerId
from tests.sfu.chromium import ROOM, VIEW, chromium_in_namespaces, poll

pytestmark = [pytest.mark.slow, pytest.mark.chromium]

LIMIT = "80kbit"
WINDOW_S = 10.0
# the light canvas of the shaped test, with a tone (WebAudio: about:blank has no mediaDevices)
PUBLISH_AV = simulcast_publisher(squares=6, audio=True)
VIEW_AV = VIEW.replace("window.pc = pc;", "window.pc = pc; pc.ontrack = e => { const el = document.createElement("
                       "e.track.kind); el.srcObject = new MediaStream([e.track]); el.muted = true; el.play(); "
                       "document.body.appendChild(el); };", 1)
RECEIVED = """async () => {
  const out = {};
  (await window.pc.getStats()).forEach(s => {
    if (s.type === 'inbound-rtp') out[s.kind] = {packets: s.packetsReceived, frames: s.framesDecoded || 0,
      samples: s.totalSamplesReceived || 0, concealed: s.concealedSamples || 0}; });
  return out;
}"""


def test_a_viewer_behind_80_kbits_keeps_its_audio_when_its_video_stops() -> None:
    with chromium_in_namespaces(2) as (sfu, [pub, view]):
        sfu.publish_page(pub.browser, PUBLISH_AV)
        router = sfu.worker.routers[ROOM]
        track = sfu.simulcast_track()
        netns.limit(view.link.host_dev, LIMIT)  # the viewer's downlink
        viewer = sfu.view_page(view.browser, "weak", VIEW_AV)
        transport = router.transports[PeerId("weak")]
        assert poll(lambda: viewer.evaluate(RECEIVED).get("audio", {}).get("packets", 0), lambda n: n > 50, 40)
        video = poll(lambda: [c for c in transport.consumers.values() if c.producer.codec.kind == "video"],
                     bool, 10)[0]
        audio = next(c for c in transport.consumers.values() if c.producer.codec.kind == "audio")
        assert poll(lambda: video.paused, bool, 40), (sfu.call(sfu.worker.link_stats(ROOM, PeerId("weak"))),
                                                      track.bitrates)
        before = viewer.evaluate(RECEIVED)
        paused = 0
        for _ in range(int(WINDOW_S * 2)):
            time.sleep(0.5)
            paused += video.paused
        after = viewer.evaluate(RECEIVED)
        a0, a1, v0, v1 = before["audio"], after["audio"], before.get("video", {}), after.get("video", {})
        audio_pps = (a1["packets"] - a0["packets"]) / WINDOW_S
        samples = a1["samples"] - a0["samples"]
        concealed = (a1["concealed"] - a0["concealed"]) / samples if samples else 1.0
        frames = v1.get("frames", 0) - v0.get("frames", 0)
        link = sfu.call(sfu.worker.link_stats(ROOM, PeerId("weak")))
        print(f"weak viewer: audio {audio_pps:.1f} packets/s, {concealed:.1%} concealed; video paused "
              f"{paused}/{int(WINDOW_S * 2)} samples, {frames} frames decoded; link {link}; "
              f"layers {[round(b) for b in track.bitrates]}")
        assert paused >= WINDOW_S  # mostly paused (a probe may resume it for a moment)
        assert audio_pps >= 40 and concealed < 0.2, (audio_pps, concealed)
        assert frames < 5 * WINDOW_S, frames  # at most a few frames of a resume that failed
        assert extensions.AUDIO_LEVEL in audio.out.passthrough, audio.out  # forwarded at the viewer's id
        assert any(uri == extensions.AUDIO_LEVEL for uri, _ in audio.producer.ext_values)  # and Chrome sends it
