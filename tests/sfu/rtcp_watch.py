"""What a participant's RTCPeerConnection receives as RTCP, counted by type: an outside observer's view.

Hooks a client aiortc peer's DTLS transports right after SRTCP is decrypted (before aiortc routes
the packets to its senders and receivers), so every RTCP packet the SFU sent to that party is
counted, whatever aiortc later does with it. Also the ticks of an SFU router, so that windows can
be measured in the SFU's own report periods rather than in seconds.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc import RTCPeerConnection

from sfu import rtcp
from sfu.router import Router


def kind_of(pt: int, fmt: int, body: bytes) -> str:
    if pt == rtcp.SR:
        return "SR"
    if pt == rtcp.RR:
        return "RR"
    if pt == rtcp.RTPFB and fmt == rtcp.FMT_NACK:
        return "NACK"
    if pt == rtcp.PSFB and fmt == rtcp.FMT_PLI:
        return "PLI"
    if pt == rtcp.PSFB and fmt == rtcp.FMT_FIR:
        return "FIR"
    if pt == rtcp.PSFB and fmt == rtcp.FMT_REMB and rtcp.remb_bitrate(body) is not None:
        return "REMB"
    return f"{pt}/{fmt}"


class RtcpWatch:
    """Counts the RTCP packets one client peer connection receives, by type."""

    def __init__(self, pc: RTCPeerConnection) -> None:
        self.counts: Counter[str] = Counter()
        self._hooked: set[int] = set()
        for tr in pc.getTransceivers():
            for dtls in (tr.sender.transport, tr.receiver.transport):
                if dtls is not None and id(dtls) not in self._hooked:
                    self._hooked.add(id(dtls))
                    self._hook(dtls)
        assert self._hooked, "the peer connection has no transport yet"

    def _hook(self, dtls: Any) -> None:
        original: Callable[[bytes], Awaitable[None]] = dtls._handle_rtcp_data

        async def counting(data: bytes) -> None:
            for pt, fmt, body in rtcp.split(data):
                self.counts[kind_of(pt, fmt, body)] += 1
            await original(data)

        dtls._handle_rtcp_data = counting

    def snapshot(self) -> Counter[str]:
        return Counter(self.counts)


class Ticks:
    """Counts a router's ticks (the worker calls ``router.tick()`` once per report period)."""

    def __init__(self, router: Router) -> None:
        self.n = 0
        self._changed = asyncio.Event()
        original = router.tick

        def counting() -> None:
            original()
            self.n += 1
            self._changed.set()

        router.tick = counting  # type: ignore[method-assign]

    async def wait(self, n: int, timeout: float = 60) -> None:  # noqa: ASYNC109
        """Until ``n`` more ticks ran, then a third of a period, so what they sent has arrived."""
        await self.wait_until(self.n + n, timeout)

    async def wait_until(self, target: int, timeout: float = 60) -> None:  # noqa: ASYNC109
        """Until tick number ``target`` ran (it must not have yet), then a third of a period."""
        assert self.n < target, f"the window is already over: tick {self.n} of {target}"
        async with asyncio.timeout(timeout):
            while self.n < target:
                self._changed.clear()
                await self._changed.wait()
        await asyncio.sleep(0.3)


def window(before: Counter[str], after: Counter[str]) -> dict[str, int]:
    """What arrived between two snapshots, by type (zero counts left out)."""
    return {k: v for k, v in (after - before).items() if v}
