"""The simulcast layers a node's exporting pipes carry and hold, on its ``/metrics`` (gauges): headless
Chromium (in a network namespace: Chrome gathers no loopback candidates) publishes q/h/f to node A, a
viewer's join on node B pulls the show through a sealed pipe; with nobody watching on B, A holds the
three layers (none crosses); a real aiortc viewer on B starts one crossing.

Needs root, iproute2 and Chromium (tests/sfu/chromium.py); fails, saying which, without them.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, async_playwright

from bench.chromium import CHROMIUM, launch_args
from bench.netns import Link
from sfu.pipe_demand import LINGER_S
from tests.e2e.browser import FLAGS
from tests.sfu.chromium import ANSWER, missing, namespace
from tests.sfu.peers import Viewer
from tests.sfu.test_chromium_simulcast import PUBLISH, SENT
from tests.signaling.node_processes import node_starter  # noqa: F401 (the start_node fixture)
from tests.signaling.test_cascade import ROOM, SECRET, free_port, watch_viewer

pytestmark = [pytest.mark.slow, pytest.mark.chromium]

POLL_S = 5.0
"""The node polls its workers' counters this often (signaling/media_metrics.py)."""
SETTLE_S = LINGER_S + 3 * POLL_S + 30
"""Generous bound for a layer to stop (or start) crossing and the node's next poll to show it."""


async def metrics_text(port: int) -> str:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as r:
        return await r.text()


async def scrape(port: int) -> dict[str, str]:
    """The node's ``/metrics`` lines by name: sample lines (name -> value) and ``# HELP``/``# TYPE`` lines
    (``HELP name``/``TYPE name`` -> the rest)."""
    out = {}
    for line in (await metrics_text(port)).splitlines():
        if line.startswith("# "):
            kind, name, rest = [*line[2:].split(" ", 2), ""][:3]
            out[f"{kind} {name}"] = rest
        elif line:
            name, value = line.rsplit(" ", 1)
            out[name] = value
    return out


async def layers_when(port: int, until: Callable[[int, int], bool]) -> tuple[int, int]:
    """(crossing, held) from the node's gauges, once ``until(crossing, held)`` (the last read either way)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + SETTLE_S
    while True:
        seen = await scrape(port)
        now = (int(float(seen.get("sfu_pipe_layers_crossing", -1))), int(float(seen.get("sfu_pipe_layers_held", -1))))
        if until(*now) or loop.time() > end:
            return now
        await asyncio.sleep(1.0)


@contextlib.asynccontextmanager
async def chromium_in(link: Link) -> AsyncIterator[Browser]:
    """Chromium inside ``link``'s namespace (host candidates as addresses, as tests/sfu/chromium.py)."""
    with tempfile.TemporaryDirectory() as tmp:
        wrapper = Path(tmp) / "chromium-in-ns"
        wrapper.write_text(f"#!/bin/sh\nexec ip netns exec {link.ns} {CHROMIUM} \"$@\"\n")
        wrapper.chmod(0o755)
        async with async_playwright() as pw:
            probe = await pw.chromium.launch(executable_path=CHROMIUM, args=[*FLAGS, "--enable-automation"])
            try:
                line = (await (await probe.new_browser_cdp_session()).send("Browser.getBrowserCommandLine"))
            finally:
                await probe.close()
            args, ignore = launch_args(FLAGS, line["arguments"])
            browser = await pw.chromium.launch(executable_path=str(wrapper), args=[*args, "--enable-automation"],
                                               ignore_default_args=ignore)
            try:
                yield browser
            finally:
                await browser.close()


async def test_a_nodes_metrics_show_the_simulcast_layers_its_pipes_carry_and_hold(
        start_node: Callable[..., Any], token: Callable[..., str]) -> None:
    problem = missing()
    if problem:
        pytest.fail(problem)  # a missing dependency fails, never skips (tests/conftest.py)
    metrics_a = free_port()
    viewer: Viewer | None = None
    with namespace() as link:
        a, b = await asyncio.gather(
            start_node(SWITCHBOARD_CASCADE_SECRET=SECRET, SWITCHBOARD_METRICS_NODE_PORT=str(metrics_a),
                       SWITCHBOARD_NODE_RTC_ADDRESSES=link.host_address,
                       SWITCHBOARD_CASCADE_PIPE_ADDRESS="127.0.0.1"),
            start_node(SWITCHBOARD_CASCADE_SECRET=SECRET))
        async with chromium_in(link) as browser, aiohttp.ClientSession() as http:
            try:
                caster = await a.connect(http, token("caster", ROOM, publish=True, verified=True))
                await caster.ok("show.create")
                page = await browser.new_page()
                offer = await page.evaluate(PUBLISH)
                await page.evaluate(ANSWER, (await caster.ok("show.publish", room=ROOM, sdp=offer))["sdp"])
                seen = await scrape(metrics_a)
                assert seen.get("TYPE sfu_pipe_layers_crossing") == "gauge", sorted(k for k in seen if "sfu_" in k)
                assert seen.get("TYPE sfu_pipe_layers_held") == "gauge"
                assert seen.get("HELP sfu_pipe_layers_held", "").startswith("Simulcast layers")
                assert (seen["sfu_pipe_layers_crossing"], seen["sfu_pipe_layers_held"]) == ("0.0", "0.0")  # no pipe

                bob = await b.connect(http, token("bob", ROOM, subscribe=True))
                await bob.ok("show.join", room=ROOM)  # B pulls the show from A: A exports it through a pipe
                held = await layers_when(metrics_a, lambda on, off: (on, off) == (0, 3))
                assert held == (0, 3), (held, await page.evaluate(SENT))  # nobody on B: every layer held
                print("\n".join(x for x in (await metrics_text(metrics_a)).splitlines() if "sfu_pipe_layers" in x))

                viewer = await watch_viewer(bob, retry=True)
                await viewer.wait_frames(5, timeout=60)
                on, off = await layers_when(metrics_a, lambda on, off: on >= 1 and on + off == 3)
                assert on >= 1 and on + off == 3, (on, off)  # the layer bob's viewer is on crosses
            finally:
                if viewer is not None:
                    await viewer.close()
