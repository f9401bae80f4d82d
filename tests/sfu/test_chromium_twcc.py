"""Chrome's send-side estimate works through the SFU: headless Chromium publishes its fake camera
from inside a network namespace (a veth pair the test makes and removes); the SFU answers with
transport-cc and sends it feedback; Chrome's ``availableOutgoingBitrate`` (getStats, candidate pair)
is there, and falls when the publisher's own link is limited to 500 kbit/s with ``tc tbf``.

Needs root (namespaces, tc), iproute2 and Chromium (`make deps` installs them); fails, saying which, without them.
"""

from __future__ import annotations

import pytest

from bench import netns
from sfu.types import PeerId
from switchboard.ids import UserId
from tests.sfu.chromium import ANSWER, ROOM, ThreadedWorker, chromium_in_namespaces, poll

pytestmark = [pytest.mark.slow, pytest.mark.chromium]

LIMIT = "500kbit"

PUBLISH = """async () => {
  // a canvas of moving noise (about:blank is no secure context: no getUserMedia); noise keeps the
  // encoder's bitrate up to what the estimate allows
  const canvas = document.createElement('canvas');
  canvas.width = 640; canvas.height = 480;
  const g = canvas.getContext('2d');
  setInterval(() => { for (let i = 0; i < 300; i++) {
      g.fillStyle = `rgb(${Math.random() * 255},${Math.random() * 255},${Math.random() * 255})`;
      g.fillRect(Math.random() * 640, Math.random() * 480, 24, 24); } }, 33);
  const stream = canvas.captureStream(30);
  const pc = new RTCPeerConnection();
  window.pc = pc;
  stream.getTracks().forEach(t => pc.addTrack(t, stream));
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise(r => { if (pc.iceGatheringState === 'complete') r();
                           pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r(); });
  return pc.localDescription.sdp;
}"""
DECODED = """async () => {
  let n = 0;
  (await window.pc.getStats()).forEach(s => {
    if (s.type === 'inbound-rtp' && s.kind === 'video') n = s.framesDecoded; });
  return n;
}"""
AVAILABLE = """async () => {
  const stats = await window.pc.getStats();
  let rate = null;
  stats.forEach(s => { if (s.type === 'candidate-pair' && s.nominated && s.availableOutgoingBitrate !== undefined)
                         rate = s.availableOutgoingBitrate; });
  return rate;
}"""


def feedback_sent(sfu: ThreadedWorker) -> int:
    """How many transport-cc feedback packets the SFU has sent the publisher."""
    async def count() -> int:
        t = sfu.worker.routers[ROOM].transports.get(PeerId("chrome"))
        return t.feedback.arrivals.sent if t is not None and t.feedback is not None else 0
    return int(sfu.call(count()))


def test_chromes_outgoing_estimate_follows_its_limited_link_through_the_sfu() -> None:
    with chromium_in_namespaces(1) as (sfu, [chrome]):
        page = chrome.browser.new_page()
        page.goto("about:blank")
        offer = page.evaluate(PUBLISH)
        assert "transport-wide-cc" in offer
        answer = sfu.call(sfu.worker.publish(ROOM, PeerId("chrome"), UserId("user-chrome"), offer))
        assert "transport-wide-cc" in answer and "transport-cc" in answer
        page.evaluate(ANSWER, answer)
        assert poll(lambda: feedback_sent(sfu), lambda n: n >= 20, 30) >= 20
        rate = page.evaluate(AVAILABLE)
        assert rate is not None and rate > 0
        # a Chromium viewer: it takes our mid / abs-send-time / transport-cc rewriting, decodes, and its
        # transport-cc feedback feeds the SFU's estimate toward it
        viewer = sfu.view_page(chrome.browser, "viewer")
        assert poll(lambda: viewer.evaluate(DECODED), lambda n: n >= 30, 30) >= 30
        link = poll(lambda: sfu.call(sfu.worker.link_stats(ROOM, PeerId("viewer"))),
                    lambda v: v["estimate_source"] == "transport-cc", 20)
        print(f"SFU estimate toward the Chromium viewer: {link}")
        assert link["estimate_source"] == "transport-cc" and link["available_outgoing_bitrate"] > 0
        free = poll(lambda: page.evaluate(AVAILABLE), lambda r: r is not None and r > 900_000, 30)
        netns.limit(chrome.link.ns_dev, LIMIT, burst="8kbit", latency="200ms", ns=chrome.link.ns)
        limited = poll(lambda: page.evaluate(AVAILABLE), lambda r: r is not None and r < 600_000, 40)
        print(f"availableOutgoingBitrate: {free} unlimited, {limited} behind {LIMIT}")
        assert free > 700_000 and limited < min(700_000, 0.75 * free), (free, limited)
