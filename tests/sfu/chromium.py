"""Headless Chromium in network namespaces, publishing to and viewing from an in-process SFU Worker:
the set-up of the SFU's browser tests (tests/sfu/test_chromium_*.py, test_simulcast_shaped.py,
test_weak_link_audio.py).

Chrome gathers no loopback candidates, so each browser runs inside a namespace of its own (a veth
pair with private addresses, bench/netns.py) and the Worker listens on the pairs' host ends. A
link is shaped with ``tc tbf`` on either end (:func:`bench.netns.limit`). Playwright's sync API owns
the test's thread; the Worker runs on its own loop in a thread (:class:`ThreadedWorker`).

Needs root (namespaces, tc), iproute2 and Chromium (``make deps`` installs them): a test fails,
saying which, without them (tests/conftest.py: a missing dependency never skips).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench import netns
from bench.chromium import CHROMIUM
from sfu.events import MemoryEventSink
from sfu.types import PeerId
from sfu.worker import Worker
from switchboard.ids import RoomId, UserId

ROOM = RoomId("twcc-chromium")
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


def missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, tc)"
    if shutil.which("ip") is None or shutil.which("tc") is None:
        return "needs iproute2 (ip, tc)"
    if not Path(CHROMIUM).exists():
        return f"needs Chromium at {CHROMIUM}"
    return None


def poll(read: Any, until: Any, timeout: float) -> Any:
    """Read a value every half second until ``until(value)``; the last value either way."""
    end = time.monotonic() + timeout
    value = read()
    while not until(value) and time.monotonic() < end:
        time.sleep(0.5)
        value = read()
    return value


class ThreadedWorker:
    """A Worker on the namespaces' host addresses, on its own event loop in a thread, with ``ROOM``
    open."""

    def __init__(self, addresses: tuple[str, ...]) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.worker = Worker(addresses=addresses, events=MemoryEventSink())
        self.call(self.worker.start())
        self.call(self.worker.open_room(ROOM))

    def call(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def publish_page(self, browser: Any, script: str, peer: str = "chrome") -> Any:
        """A new page of ``browser`` that publishes with ``script`` (it returns the offer) as
        ``peer``, the SFU's answer applied."""
        page = browser.new_page()
        page.goto("about:blank")
        page.evaluate(ANSWER, self.call(self.worker.publish(ROOM, PeerId(peer), UserId(f"u-{peer}"),
                                                            page.evaluate(script))))
        return page

    def view_page(self, browser: Any, peer: str, script: str = VIEW) -> Any:
        """A new page of ``browser`` subscribed to the room as ``peer`` (``script`` answers the SFU's
        offer)."""
        page = browser.new_page()
        page.goto("about:blank")
        offer = self.call(self.worker.subscribe(ROOM, PeerId(peer), UserId(f"u-{peer}"), hidden=False))
        self.call(self.worker.accept_answer(ROOM, PeerId(peer), page.evaluate(script, offer)))
        return page

    def layers(self) -> int:
        """How many layers the room's first track has (0 before there is one)."""
        async def count() -> int:
            router = self.worker.routers[ROOM]
            return len(router.tracks[0].layers) if router.tracks else 0
        return int(self.call(count()))

    def simulcast_track(self, layers: int = 3, timeout: float = 40) -> Any:
        """The room's first track once it has ``layers`` layers (fails after ``timeout`` s)."""
        assert poll(self.layers, lambda n: n == layers, timeout) == layers
        return self.worker.routers[ROOM].tracks[0]

    def close(self) -> None:
        self.call(self.worker.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@contextlib.contextmanager
def namespace() -> Iterator[netns.Link]:
    """A namespace joined to the host by a veth pair with private /30 addresses (random names and
    addresses, so that parallel runs do not meet); removed on exit."""
    tag = secrets.token_hex(4)
    net = f"10.{random.randrange(200, 250)}.{random.randrange(256)}"
    link = netns.Link(f"sbtw{tag}", f"sbh{tag}", f"sbn{tag}", net)
    with netns.namespace(link):
        yield link


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


@dataclass(frozen=True)
class Chromium:
    """One browser in its namespace."""

    browser: Any
    """Playwright's (sync) Browser."""
    link: netns.Link
    """Its namespace and pair: ``link.ns_dev`` is its uplink's device, ``link.host_dev`` its downlink's."""


@contextlib.contextmanager
def chromium_in_namespaces(count: int) -> Iterator[tuple[ThreadedWorker, list[Chromium]]]:
    """``count`` browsers, each in a namespace of its own, and a started :class:`ThreadedWorker`
    listening on every pair's host end. Fails the test when root, iproute2 or Chromium is missing.
    On exit the Worker closes, then the browsers, then the namespaces go."""
    problem = missing()
    if problem:
        pytest.fail(problem)  # a missing dependency fails, never skips (tests/conftest.py)
    from playwright.sync_api import sync_playwright

    with contextlib.ExitStack() as stack:
        links = [stack.enter_context(namespace()) for _ in range(count)]
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        pw = stack.enter_context(sync_playwright())
        browsers = [Chromium(stack.enter_context(browser_in(pw, link.ns, tmp)), link) for link in links]
        sfu = ThreadedWorker(tuple(link.host_address for link in links))
        stack.callback(sfu.close)
        yield sfu, browsers
