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
import itertools
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiortc import AudioStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription, VideoStreamTrack

from sfu import aiortc_private
from sfu.measure_janus import SCHEME as JANUS_SCHEME
from sfu.measure_janus import JanusSignal


class Refused(RuntimeError):
    """The server answered a request with an error frame."""

    def __init__(self, kind: str, reply: dict[str, Any]) -> None:
        super().__init__(f"{kind}: {reply}")
        self.code = str(reply.get("code", ""))
        self.retry_after = float(reply.get("retry_after") or 0)
        """The server's hint when it shed the request for its load (0: not a shed)."""


JOIN_PATIENCE_S = 120.0
"""How long a viewer keeps trying to get in while the server sheds it (as a patient person would)."""


async def backoff(retry_after: float) -> None:
    """Wait as the server asked, with jitter so that a shed crowd does not come back in step."""
    await asyncio.sleep(max(0.5, retry_after) * (0.5 + random.random()))


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


async def read_command() -> str:
    return (await asyncio.to_thread(sys.stdin.readline)).strip()


class Signal:
    """Offer/answer with the server under test: the node's /ws, or the baseline's HTTP API."""

    def __init__(self, http: aiohttp.ClientSession, url: str, token: str, room: str) -> None:
        self.http, self.url, self.token, self.room = http, url, token, room
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.relay_id = ""
        self._ids = itertools.count(1)
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self.on_offer: Any = None
        self.on_closed: Any = None
        """Called with the reason of a ``show.peer_closed`` (the server closed our peer connection)."""
        self.tasks: set[asyncio.Future[None]] = set()
        self.told: list[dict[str, Any]] = []
        """``show.peer_closed`` / ``show.media_stopped`` messages the server sent us."""
        self.retries = 0
        """Joins the server shed (``unavailable`` with ``retry_after``) and we asked again."""
        self.reconnects = 0
        """Connects the server shed (``overloaded``) and we made again."""

    @property
    def is_node(self) -> bool:
        return self.url.startswith("ws")

    async def open(self) -> None:
        """The socket, up to its ``hello``; a node that sheds the connect (``overloaded``, then close
        1013) is asked again after its ``retry_after``, as docs/protocol.md tells clients to."""
        if not self.is_node:
            return
        deadline = time.monotonic() + JOIN_PATIENCE_S
        while True:
            ws = await self.http.ws_connect(self.url, params={"token": self.token}, heartbeat=None)
            msg = await ws.receive(timeout=60)
            first = json.loads(msg.data) if msg.type is aiohttp.WSMsgType.TEXT else {}
            if first.get("type") == "hello":
                break
            await ws.close()
            if first.get("code") != "overloaded" or time.monotonic() > deadline:
                raise RuntimeError(f"no hello: {first or msg}")
            self.reconnects += 1
            await backoff(float(first.get("retry_after") or 1))
        self.ws = ws
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            m = json.loads(msg.data)
            fut = self._replies.pop(m.get("ref"), None) if m["type"] in ("reply", "error") else None
            if fut is not None and not fut.done():
                fut.set_result(m)
            elif m["type"] == "show.offer" and self.on_offer is not None:
                self.tasks.add(asyncio.ensure_future(self.on_offer(m["sdp"])))
            elif m["type"] in ("show.peer_closed", "show.media_stopped"):
                self.told.append({"type": m["type"], "reason": m.get("reason"), "at": time.monotonic()})
                if m["type"] == "show.peer_closed" and self.on_closed is not None:
                    self.on_closed(m.get("reason"))

    async def request(self, kind: str, **body: Any) -> dict[str, Any]:
        if not self.is_node:
            async with self.http.post(f"{self.url}/{kind}", json={"id": self.relay_id, **body}) as r:
                r.raise_for_status()
                reply: dict[str, Any] = await r.json()
            self.relay_id = reply.get("id", self.relay_id)
            return reply
        assert self.ws is not None
        ref = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[ref] = fut
        await self.ws.send_str(json.dumps({"type": kind, "id": ref, "room": self.room, **body}))
        reply = await asyncio.wait_for(fut, 60)
        if reply["type"] == "error":
            raise Refused(kind, reply)
        return reply

    async def publish(self, offer: str) -> str:
        if self.is_node:
            await self.request("show.create")
            return (await self.request("show.publish", sdp=offer))["sdp"]
        return (await self.request("publish", sdp=offer))["sdp"]

    async def subscribe(self) -> str:
        """The server's offer; a join the worker shed (``unavailable`` with ``retry_after``: it is pacing
        joins) is asked again after the hint."""
        if not self.is_node:
            return (await self.request("subscribe"))["sdp"]
        deadline = time.monotonic() + JOIN_PATIENCE_S
        while True:
            try:
                return (await self.request("show.subscribe"))["sdp"]
            except Refused as exc:
                if not exc.retry_after or time.monotonic() > deadline:
                    raise
                self.retries += 1
                await backoff(exc.retry_after)

    async def enter(self) -> None:
        """Joins the show (the node only): the roster, chat and ``show.offer`` from now on."""
        if self.is_node:
            await self.request("show.join")

    async def answer(self, sdp: str) -> None:
        await self.request("show.answer" if self.is_node else "answer", sdp=sdp)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


AnySignal = Signal | JanusSignal


def signal_for(http: aiohttp.ClientSession, url: str, token: str, room: str) -> AnySignal:
    """The signaling the URL names: Janus's API (``janus+ws://``), else the node's or the relay's."""
    if url.startswith(JANUS_SCHEME):
        return JanusSignal(http, url, token, room)
    return Signal(http, url, token, room)


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


class Viewer:
    """One subscriber; counts RTP per SSRC at the socket, or (``decode``) decodes every video frame."""

    def __init__(self, signal: AnySignal, decode: bool, kernel_time: bool = True) -> None:
        self.signal = signal
        self.decode = decode
        self.kernel_time = kernel_time
        """Counting: each datagram's arrival is the kernel's receive time (False: ``time.time()`` when
        this process's event loop reads it, the load generator as it was: a comparison run)."""
        self.pc = self._new_pc()
        self.seen: dict[int, list[int]] = {}
        self.packets = 0
        self.octets = 0
        """Bytes of the datagrams counted (SRTP: headers and tag included)."""
        self.lost = 0
        self.frames = 0
        self.joined_at = time.monotonic()
        self.first_frame_at: float | None = None
        self.last_frame_at = 0.0
        self.longest_gap = 0.0
        self.connected_at = 0.0
        self.tasks: list[asyncio.Task[None]] = []
        self.rejoins = 0
        """Peer connections made again: one that failed to connect, or that the server closed."""
        self._connecting = False
        self._rejoin: asyncio.Task[None] | None = None
        self.remb: aiortc_private.SocketRemb | None = None
        """A counting viewer's REMB, as aiortc's receiver would send it (the SFU's estimate of it)."""
        self.clocks: list[aiortc_private.ArrivalClock] = []
        """The sockets' arrival clocks (kernel stamps given / not), every peer connection's."""

    def _new_pc(self) -> RTCPeerConnection:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        if self.decode:
            @pc.on("track")
            def on_track(track: Any) -> None:
                if track.kind == "video":
                    self.tasks.append(asyncio.ensure_future(self._pull(track)))
        return pc

    async def _pull(self, track: Any) -> None:
        with contextlib.suppress(Exception):
            while True:
                await track.recv()
                self.frames += 1
                now = time.monotonic()
                if self.first_frame_at is None:
                    self.first_frame_at = now
                self.longest_gap = max(self.longest_gap, now - self.last_frame_at) if self.last_frame_at else 0.0
                self.last_frame_at = now

    def freeze_ms(self) -> float:
        """The longest time between two decoded frames since :attr:`longest_gap` was reset, counting
        the time since the last one."""
        since = time.monotonic() - self.last_frame_at if self.last_frame_at else float("inf")
        return round(1000 * max(self.longest_gap, since), 1)

    def on_rtp(self, data: bytes, arrival: float | None) -> None:
        """One SRTP datagram at the socket; ``arrival``: the kernel's receive time (None: it gave none)."""
        self.packets += 1
        self.octets += len(data)
        if self.remb is not None:
            self.remb.on_rtp(data, int((arrival if arrival is not None else time.time()) * 1000))
        ssrc = int.from_bytes(data[8:12], "big")
        seq = (data[2] << 8) | data[3]
        s = self.seen.get(ssrc)
        if s is None:
            self.seen[ssrc] = [1, seq, seq, 0]  # received, first, highest, cycles
            return
        s[0] += 1
        if (seq - s[2]) & 0xFFFF < 0x8000:
            if seq < s[2]:
                s[3] += 0x10000
            s[2] = seq

    def loss_pct(self) -> float:
        worst = 0.0
        for received, first, last, cycles in self.seen.values():
            expected = cycles + last - first + 1
            if expected > 50:  # RTX streams are sparse: judge the media streams
                worst = max(worst, 100.0 * max(0, expected - received) / expected)
        return worst

    async def received(self) -> int:
        if not self.decode:
            return self.packets
        stats = await self.pc.getStats()
        self.lost = sum(s.packetsLost for s in stats.values() if s.type == "inbound-rtp")
        return sum(s.packetsReceived for s in stats.values() if s.type == "inbound-rtp")

    async def join(self) -> None:
        self.joined_at = time.monotonic()
        await self.signal.open()
        self.signal.on_offer = self._renegotiate
        self.signal.on_closed = self._closed
        await self.signal.enter()
        await self._connect()

    async def _connect(self) -> None:
        """Subscribes and connects; a connection that fails is made again with a new subscribe, as the
        watch page does (web/watch.js), until it connects or JOIN_PATIENCE_S runs out."""
        self._connecting = True
        try:
            deadline = time.monotonic() + JOIN_PATIENCE_S
            while not await self._negotiate(await self.signal.subscribe()):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"viewer did not connect: {self.pc.connectionState}")
                self.rejoins += 1
                await self.pc.close()
                self.pc = self._new_pc()
        finally:
            self._connecting = False
        self.connected_at = time.monotonic()
        if not self.decode:
            self.remb = aiortc_private.SocketRemb.of(self.pc)
            self.clocks += aiortc_private.count_incoming_rtp(self.pc, self.on_rtp, self.kernel_time)

    async def _negotiate(self, offer: str) -> bool:
        """Answers the server's offer; True once connected, False if the connection failed or timed out."""
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        if not self.decode:  # until the socket hook is in: drop media before aiortc decodes it
            for tr in self.pc.getTransceivers():
                aiortc_private.hook_dtls(tr.receiver.transport, lambda data: None, lambda data: None)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        try:
            await self.signal.answer(self.pc.localDescription.sdp)
        except Refused as exc:
            if exc.code != "not_found":
                raise
            return False  # the server closed the peer meanwhile (shed): subscribe again
        deadline = time.monotonic() + 60
        while self.pc.connectionState != "connected":
            if self.pc.connectionState in ("failed", "closed") or time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    def _closed(self, reason: str) -> None:
        """The server closed our peer connection (``show.peer_closed``): subscribe again, as watch.js does."""
        if self._connecting or (self._rejoin is not None and not self._rejoin.done()):
            return  # a connect under way makes its own new connection
        self._rejoin = asyncio.ensure_future(self._again())

    async def _again(self) -> None:
        self.rejoins += 1
        await self.pc.close()
        self.pc = self._new_pc()
        self.seen.clear()  # the new consumers number their packets afresh
        with contextlib.suppress(Exception):
            await self._connect()

    async def _renegotiate(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await self.signal.answer(self.pc.localDescription.sdp)

    async def close(self) -> None:
        if self._rejoin is not None:
            self._rejoin.cancel()
            await asyncio.gather(self._rejoin, return_exceptions=True)
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.pc.close()
        await self.signal.close()


async def link_kbps(signal: AnySignal) -> float | None:
    """The SFU's estimate of this viewer's link (``show.stats``), kbit/s; None when it has none."""
    if not isinstance(signal, Signal) or not signal.is_node:
        return None
    try:
        reply = await signal.request("show.stats")
    except Exception:
        return None
    value = reply.get("estimate_kbps")
    return float(value) if value is not None else None


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
