"""One viewer of the load generator (``sfu.measure``): joins through the signaling, then counts RTP per
SSRC at the socket (no decryption) or, as a sample viewer, decodes every video frame."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from sfu import aiortc_private
from sfu.measure_signal import JOIN_PATIENCE_S, AnySignal, Refused, Signal


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


