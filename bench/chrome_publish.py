"""A simulcast publisher for ``python -m bench sfu --simulcast``: headless Chromium (Debian's, driven by
Playwright) publishing a 1280x720 canvas (``SQUARES`` noise squares a frame) in three VP8 encodings
(q/h/f, 1/4, 1/2, full size) to the node's ``/ws`` (signaling from this process over aiohttp; WebRTC
in the page). aiortc cannot send simulcast, so the bench's aiortc publisher cannot stand in. Speaks
the load generators' JSON lines (``ready``, ``started``, ``result``; ``start`` and ``stop`` on stdin),
so the bench drives it like ``python -m sfu.measure publish``.

Uses only public doors: the WebSocket protocol (docs/protocol.md) and WebRTC.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from typing import Any

import aiohttp

from bench.chromium import CHROMIUM, launch_args, simulcast_publisher

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream", "--allow-loopback-in-peer-connection", "--no-proxy-server",
        "--autoplay-policy=no-user-gesture-required"]
SQUARES = 20
"""Noise squares the canvas draws a frame (``bench.chromium.simulcast_publisher``)."""
ANSWER = """async sdp => {
  const pc = window.pc;
  await pc.setRemoteDescription({type: 'answer', sdp});
  const until = Date.now() + 30000;
  await new Promise((r, fail) => { const check = () => pc.connectionState === 'connected' ? r()
      : Date.now() > until ? fail(new Error(`not connected: ${pc.connectionState}/${pc.iceConnectionState}`))
      : setTimeout(check, 50); check(); });
}"""
ENCODED = """async () => {
  const out = {};
  (await window.pc.getStats()).forEach(s => {
    if (s.type === 'outbound-rtp' && s.kind === 'video') {
      const r = s.rid || 'f';
      out[r] = s.framesEncoded || 0; out['bytes:' + r] = s.bytesSent || 0; out['qp:' + r] = s.qpSum || 0;
      out['target:' + r] = s.targetBitrate || 0; out['size:' + r] = `${s.frameWidth}x${s.frameHeight}`; }
    if (s.type === 'candidate-pair' && s.nominated && s.availableOutgoingBitrate !== undefined)
      out.available = s.availableOutgoingBitrate; });
  out.state = window.pc.connectionState;
  return out;
}"""


async def hello(ws: aiohttp.ClientWebSocketResponse) -> None:
    first = json.loads((await ws.receive(timeout=60)).data)
    if first.get("type") != "hello":
        raise RuntimeError(f"no hello: {first}")


async def request(ws: aiohttp.ClientWebSocketResponse, body: dict[str, Any], told: list[str]) -> dict[str, Any]:
    await ws.send_str(json.dumps(body))
    while True:
        m = json.loads((await ws.receive(timeout=60)).data)
        if m.get("type") == "show.peer_closed":
            told.append(str(m.get("reason")))
        elif m.get("ref") == body["id"]:
            if m["type"] == "error":
                raise RuntimeError(f"{body['type']}: {m}")
            return dict(m)


async def drain(ws: aiohttp.ClientWebSocketResponse, told: list[str]) -> None:
    async for msg in ws:
        m = json.loads(msg.data) if msg.type is aiohttp.WSMsgType.TEXT else {}
        if m.get("type") == "show.peer_closed":
            told.append(str(m.get("reason")))


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


async def read_command() -> str:
    return (await asyncio.to_thread(sys.stdin.readline)).strip()


async def publish(url: str, token: str, room: str, layers: int = 3) -> None:
    from playwright.async_api import async_playwright

    stack = contextlib.AsyncExitStack()
    async with async_playwright() as pw:
        probe = await pw.chromium.launch(executable_path=CHROMIUM, args=[*ARGS, "--enable-automation"])
        try:
            line = (await (await probe.new_browser_cdp_session()).send("Browser.getBrowserCommandLine"))["arguments"]
        finally:
            await probe.close()
        args, theirs = launch_args(ARGS, line)
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=args, ignore_default_args=theirs)
        try:
            page = await browser.new_page()
            page.on("console", lambda m: print(f"console: {m.text}", file=sys.stderr))
            await page.goto("about:blank")
            # signaling from here (the bench's WebSocket client); WebRTC in the page
            http = await stack.enter_async_context(aiohttp.ClientSession())
            ws = await http.ws_connect(url, params={"token": token}, heartbeat=None)
            told: list[str] = []
            await hello(ws)
            await request(ws, {"type": "show.create", "id": 1, "room": room}, told)
            # 20 squares a frame: every layer, and the floor's one encoding, needs its whole maxBitrate at 30
            # fps; with 6, the 720p encoders met their content under it, by how often the page's timer drew
            offer = await page.evaluate(simulcast_publisher(squares=SQUARES, audio=True, layers=layers))
            answer = await request(ws, {"type": "show.publish", "id": 2, "room": room, "sdp": offer}, told)
            await page.evaluate(ANSWER, answer["sdp"])
            reader = asyncio.create_task(drain(ws, told))
            ready_at = time.monotonic()
            emit("ready")
            await read_command()  # start
            s0, t0 = await page.evaluate(ENCODED), time.monotonic()
            emit("started")
            await read_command()  # stop
            s1, elapsed = await page.evaluate(ENCODED), time.monotonic() - t0
            rids = [k for k in s1 if k in ("q", "h", "f")]
            fps = max(((s1[r] - s0.get(r, 0)) / elapsed for r in rids), default=0.0)  # layers its estimate allows
            emit("result", fps=fps, alive=s1["state"] == "connected",
                 died_after_s=None if s1["state"] == "connected" else round(time.monotonic() - ready_at, 1),
                 told=told, available_outgoing_bitrate=s1.get("available"),
                 fps_by_rid={r: round((s1[r] - s0.get(r, 0)) / elapsed, 1) for r in rids},
                 kbps_by_rid={r: round(8 * (s1[f"bytes:{r}"] - s0.get(f"bytes:{r}", 0)) / elapsed / 1000, 1)
                              for r in rids},
                 target_kbps_by_rid={r: round(s1[f"target:{r}"] / 1000, 1) for r in rids},
                 qp_by_rid={r: round((s1[f"qp:{r}"] - s0.get(f"qp:{r}", 0)) / max(1, s1[r] - s0.get(r, 0)), 1)
                            for r in rids},
                 size_by_rid={r: s1[f"size:{r}"] for r in rids})
            reader.cancel()
        finally:
            await browser.close()
            await stack.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chrome_publish")
    parser.add_argument("--signal", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--room", default="bench")
    parser.add_argument("--layers", type=int, choices=[1, 3], default=3,
                        help="3: simulcast (q/h/f); 1: one full-size encoding (the floor simulcast is compared with)")
    args = parser.parse_args(argv)
    asyncio.run(publish(args.signal, args.token, args.room, args.layers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
