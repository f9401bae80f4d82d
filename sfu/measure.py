"""The load generator ``python -m bench sfu`` runs: a publisher, or a group of viewers, as one process.

It speaks only public protocols to the server under test: the node's ``/ws`` signaling (``ws://``),
the MediaRelay baseline's small HTTP offer/answer API (``http://``) or Janus's JSON API
(``janus+ws://``, :mod:`sfu.measure_janus`), then WebRTC. It lives here,
not in bench/, because counting viewers touch aioice internals (``aiortc_private.count_incoming_rtp``):
they finish ICE/DTLS with aiortc, then count SRTP packets at the socket (the RTP header is clear)
and never decrypt or decode them; they send the REMB an aiortc viewer would (``SocketRemb``: aiortc's
estimator fed from the clear ``abs-send-time`` and the kernel's receive time of each datagram, as a
browser's network thread stamps it: ``aiortc_private.ArrivalClock``), so the SFU estimates their links
as a real one's, not this process's event-loop delays.
``--sample`` viewers decode every frame (fps, first frame).

Line protocol with the bench: JSON lines on stdout (``ready``, ``started``, ``result``); the bench
writes ``start`` and ``stop`` lines on stdin.

    python -m sfu.measure publish --signal URL --token T --room R
    python -m sfu.measure view --signal URL --tokens-file F --first I --count N --sample K --room R
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import sys
import time
from pathlib import Path

import aiohttp
from aiortc import AudioStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription, VideoStreamTrack

from sfu.measure_signal import emit, read_command, signal_for
from sfu.measure_viewer import Viewer, link_kbps


class MovingNoise(VideoStreamTrack):
    """640x480 at 30 fps, noisy enough that aiortc's VP8 encoder runs near its 1.5 Mbit/s cap."""

    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    async def recv(self):  # type: ignore[no-untyped-def]
        import numpy as np
        from av import VideoFrame

        pts, time_base = await self.next_timestamp()
        img = np.random.default_rng(self.n // 15).integers(0, 255, (480, 640, 3), dtype=np.uint8)
        img[:, (self.n * 8) % 624 :][:, :16] = 255
        self.n += 1
        frame = VideoFrame.from_ndarray(img, format="bgr24")
        frame.pts, frame.time_base = pts, time_base
        return frame


async def publish(url: str, token: str, room: str) -> None:
    async with aiohttp.ClientSession() as http:
        signal = signal_for(http, url, token, room)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        try:
            await signal.open()
            video = MovingNoise()
            pc.addTrack(video)
            pc.addTrack(AudioStreamTrack())
            await pc.setLocalDescription(await pc.createOffer())
            answer = await signal.publish(pc.localDescription.sdp)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
            while pc.connectionState != "connected":  # noqa: ASYNC110 (aiortc state)
                await asyncio.sleep(0.05)
            ready_at = time.monotonic()
            died: list[float] = []

            @pc.on("connectionstatechange")
            def _died() -> None:
                if pc.connectionState in ("failed", "closed") and not died:
                    died.append(time.monotonic() - ready_at)

            emit("ready")
            await read_command()  # start
            n0, t0 = video.n, time.monotonic()
            emit("started")
            await read_command()  # stop
            emit("result", fps=(video.n - n0) / (time.monotonic() - t0), alive=pc.connectionState == "connected",
                 died_after_s=round(died[0], 1) if died else None,
                 told=[t["reason"] for t in signal.told if t["type"] == "show.peer_closed"])
        finally:
            await pc.close()
            await signal.close()


async def view(url: str, tokens: list[str], room: str, sample: int, in_flight: int, kernel_time: bool = True) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        n = len(tokens)
        viewers = [Viewer(signal_for(http, url, t, room), decode=i >= n - sample, kernel_time=kernel_time)
                   for i, t in enumerate(tokens)]
        gate = asyncio.Semaphore(in_flight or max(1, n))
        failed: list[str] = []

        async def join(v: Viewer) -> None:
            async with gate:
                try:
                    await v.join()
                except Exception as exc:
                    failed.append(repr(exc)[:200])

        try:
            counting = [v for v in viewers if not v.decode]
            await asyncio.gather(*(join(v) for v in counting))
            await asyncio.gather(*(join(v) for v in viewers if v.decode))  # sampled under full load
            kinds = collections.Counter(failed)
            emit("ready", joined=n - len(failed), errors=[f"{k} x{c}" for k, c in kinds.most_common(3)])
            await read_command()  # start
            for v in counting:
                v.seen.clear()
            packets0 = [await v.received() for v in viewers]
            octets0 = sum(v.octets for v in counting)
            each0 = [v.octets for v in counting]
            lost0 = [v.lost for v in viewers]
            frames0 = [v.frames for v in viewers]
            for v in viewers:
                v.longest_gap = 0.0
            t0 = time.monotonic()
            emit("started")
            await read_command()  # stop
            told = [list(v.signal.told) for v in viewers]  # before anyone hangs up
            elapsed = time.monotonic() - t0
            freezes = [min(v.freeze_ms(), round(elapsed * 1000, 1)) for v in viewers if v.decode]  # none: the window
            estimates = [await link_kbps(v.signal) for v in viewers if v.decode]
            counted_estimates = [await link_kbps(v.signal) for v in counting]
            packets = sum([await v.received() for v in viewers]) - sum(packets0)
            decoder_lost = [v.lost - lost0[i] for i, v in enumerate(viewers) if v.decode]
            emit("result", packets=packets, elapsed=elapsed, counting=len(counting),
                 counting_octets=sum(v.octets for v in counting) - octets0,
                 counting_kbps=[round(8 * (v.octets - o0) / elapsed / 1000, 1)
                                for v, o0 in zip(counting, each0, strict=True)],
                 loss_pct=[v.loss_pct() for v in counting if v.seen],
                 fps=[(v.frames - f0) / elapsed for v, f0 in zip(viewers, frames0, strict=True) if v.decode],
                 first_frame_ms=[(v.first_frame_at - v.joined_at) * 1000 for v in viewers
                                 if v.decode and v.first_frame_at is not None],
                 decoder_lost=decoder_lost, freeze_ms=freezes, estimate_kbps=[e for e in estimates if e is not None],
                 silent=sum(1 for v in counting if not v.seen), joined=n - len(failed),
                 arrival_kernel=sum(c.kernel for v in counting for c in v.clocks),
                 arrival_loop=sum(c.fallback for v in counting for c in v.clocks),
                 remb_kbps=[round(v.remb.sent[-1] / 1000, 1) for v in counting if v.remb is not None and v.remb.sent],
                 counting_estimate_kbps=[e for e in counted_estimates if e is not None],
                 retries=sum(v.signal.retries for v in viewers),
                 reconnects=sum(v.signal.reconnects for v in viewers),
                 rejoins=sum(v.rejoins for v in viewers),
                 told_media_stopped=sum(1 for t in told if any(m["type"] == "show.media_stopped" for m in t)),
                 connected=sum(1 for v in viewers if v.pc.connectionState == "connected"),
                 told_peer_closed=sum(1 for t in told if any(m["type"] == "show.peer_closed" for m in t)),
                 closed_reasons=collections.Counter(m["reason"] for t in told for m in t
                                                    if m["type"] == "show.peer_closed"),
                 closed_after_s=sorted(round(m["at"] - v.connected_at, 1) for v, t in zip(viewers, told, strict=True)
                                       for m in t if m["type"] == "show.peer_closed" and v.connected_at),
                 states=collections.Counter(v.pc.connectionState for v in viewers),
                 shed=sum(1 for t in told if any(m["type"] == "show.peer_closed" and m["reason"] == "overloaded"
                                                 for m in t)))
        finally:
            for v in viewers:
                with contextlib.suppress(Exception):
                    await v.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sfu.measure")
    parser.add_argument("role", choices=["publish", "view"])
    parser.add_argument("--signal", required=True, help="ws://node/ws, http://baseline or janus+ws://host:port")
    parser.add_argument("--room", default="bench")
    parser.add_argument("--token", default="")
    parser.add_argument("--tokens-file", type=Path)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--sample", type=int, default=0, help="viewers (the last ones) that decode every frame")
    parser.add_argument("--nice", type=int, default=0, help="lower this process's priority (os.nice)")
    parser.add_argument("--in-flight", type=int, default=0, help="joins started at once (0: all of them)")
    parser.add_argument("--arrival", choices=["kernel", "loop"], default="kernel",
                        help="counting viewers' arrival times: the kernel's receive time, or time.time() in the loop")
    args = parser.parse_args(argv)
    if args.nice:
        os.nice(args.nice)
    import uvloop

    if args.role == "publish":
        uvloop.run(publish(args.signal, args.token, args.room))
    else:
        tokens = json.loads(args.tokens_file.read_text())[args.first : args.first + args.count]
        uvloop.run(view(args.signal, tokens, args.room, args.sample, args.in_flight, args.arrival == "kernel"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
