"""Chrome's send-side estimate works through the SFU: headless Chromium publishes its fake camera
from inside a network namespace (a veth pair the test makes and removes); the SFU answers with
transport-cc and sends it feedback; Chrome's ``availableOutgoingBitrate`` (getStats, candidate pair)
is there, and falls when the publisher's own link is limited to 500 kbit/s with ``tc tbf``.

Needs root (namespaces, tc), iproute2 and Chromium (`make deps` installs them); fails, saying which, without them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sfu.events import MemoryEventSink
from sfu.types import PeerId
from sfu.worker import Worker
from switchboard.ids import RoomId, UserId

pytestmark = [pytest.mark.slow, pytest.mark.chromium]

ROOM = RoomId("twcc-chromium")
CHROMIUM = "/usr/bin/chromium"
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
ANSWER = "async sdp => { await window.pc.setRemoteDescription({type: 'answer', sdp}); }"
VIEW = """async sdp => {
  const pc = new RTCPeerConnection();
  window.pc = pc;
  await pc.setRemoteDescription({type: 'offer', sdp});
  await pc.setLocalDescription(await pc.createAnswer());
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


def missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, tc)"
    if shutil.which("ip") is None or shutil.which("tc") is None:
        return "needs iproute2 (ip, tc)"
    if not Path(CHROMIUM).exists():
        return f"needs Chromium at {CHROMIUM}"
    return None


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=20)


@contextlib.contextmanager
def namespace() -> Iterator[tuple[str, str, str]]:
    """A namespace joined to the host by a veth pair with private /30 addresses: (ns, host address,
    the namespace's device). Removed on exit (deleting the namespace deletes the pair)."""
    tag = f"{os.getpid() % 10000}{random.randrange(100)}"
    ns, host_dev, ns_dev = f"sbtw{tag}", f"sbh{tag}", f"sbn{tag}"
    net = f"10.{random.randrange(200, 250)}.{random.randrange(256)}"
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "link", "add", host_dev, "type", "veth", "peer", "name", ns_dev)
        sh("ip", "link", "set", ns_dev, "netns", ns)
        sh("ip", "addr", "add", f"{net}.1/30", "dev", host_dev)
        sh("ip", "link", "set", host_dev, "up")
        sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{net}.2/30", "dev", ns_dev)
        sh("ip", "netns", "exec", ns, "ip", "link", "set", ns_dev, "up")
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        yield ns, f"{net}.1", ns_dev
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)
        subprocess.run(["ip", "link", "del", host_dev], capture_output=True, timeout=20)


class ThreadedWorker:
    """A Worker on its own event loop in a thread (Playwright's sync API owns the test's thread)."""

    def __init__(self, address: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.worker = Worker(addresses=(address,), events=MemoryEventSink())
        self.call(self.worker.start())
        self.call(self.worker.open_room(ROOM))

    def call(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def feedback_sent(self) -> int:
        async def count() -> int:
            t = self.worker.routers[ROOM].transports.get(PeerId("chrome"))
            return t.feedback.arrivals.sent if t is not None and t.feedback is not None else 0
        return int(self.call(count()))

    def close(self) -> None:
        self.call(self.worker.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def poll(read: Any, until: Any, timeout: float) -> Any:
    """Read a value every half second until ``until(value)``; the last value either way."""
    end = time.monotonic() + timeout
    value = read()
    while not until(value) and time.monotonic() < end:
        time.sleep(0.5)
        value = read()
    return value


@contextlib.contextmanager
def browser_in(pw: Any, ns: str, tmp: str) -> Iterator[Any]:
    """Chromium started inside namespace ``ns`` (a wrapper script runs it under ``ip netns exec``)."""
    from tests.e2e.browser import chromium_args

    wrapper = Path(tmp) / f"chromium-in-{ns}"
    wrapper.write_text(f"#!/bin/sh\nexec ip netns exec {ns} {CHROMIUM} \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    args, ignore = chromium_args(pw)
    browser = pw.chromium.launch(executable_path=str(wrapper), args=[*args, "--enable-automation"],
                                 ignore_default_args=ignore)
    try:
        yield browser
    finally:
        browser.close()


def test_chromes_outgoing_estimate_follows_its_limited_link_through_the_sfu() -> None:
    problem = missing()
    if problem:
        pytest.fail(problem)  # a missing dependency fails, never skips (tests/conftest.py)
    from playwright.sync_api import sync_playwright

    with (namespace() as (ns, host_addr, ns_dev), tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw,
          browser_in(pw, ns, tmp) as browser):
        sfu = ThreadedWorker(host_addr)
        try:
            page = browser.new_page()
            page.goto("about:blank")
            offer = page.evaluate(PUBLISH)
            assert "transport-wide-cc" in offer
            answer = sfu.call(sfu.worker.publish(ROOM, PeerId("chrome"), UserId("user-chrome"), offer))
            assert "transport-wide-cc" in answer and "transport-cc" in answer
            page.evaluate(ANSWER, answer)
            assert poll(sfu.feedback_sent, lambda n: n >= 20, 30) >= 20
            rate = page.evaluate(AVAILABLE)
            assert rate is not None and rate > 0
            # a Chromium viewer: it takes our mid / abs-send-time / transport-cc rewriting, decodes, and its
            # transport-cc feedback feeds the SFU's estimate toward it
            viewer = browser.new_page()
            viewer.goto("about:blank")
            offer2 = sfu.call(sfu.worker.subscribe(ROOM, PeerId("viewer"), UserId("user-viewer"), hidden=False))
            sfu.call(sfu.worker.accept_answer(ROOM, PeerId("viewer"), viewer.evaluate(VIEW, offer2)))
            assert poll(lambda: viewer.evaluate(DECODED), lambda n: n >= 30, 30) >= 30
            link = poll(lambda: sfu.call(sfu.worker.link_stats(ROOM, PeerId("viewer"))),
                        lambda v: v["estimate_source"] == "transport-cc", 20)
            print(f"SFU estimate toward the Chromium viewer: {link}")
            assert link["estimate_source"] == "transport-cc" and link["available_outgoing_bitrate"] > 0
            free = poll(lambda: page.evaluate(AVAILABLE), lambda r: r is not None and r > 900_000, 30)
            sh("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", ns_dev, "root", "tbf", "rate", LIMIT,
               "burst", "8kbit", "latency", "200ms")
            limited = poll(lambda: page.evaluate(AVAILABLE), lambda r: r is not None and r < 600_000, 40)
            print(f"availableOutgoingBitrate: {free} unlimited, {limited} behind {LIMIT}")
            assert free > 700_000 and limited < min(700_000, 0.75 * free), (free, limited)
        finally:
            sfu.close()
