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
from typing import Any, Generic, TypeVar

from aiortc import RTCPeerConnection

from sfu import rtcp
from sfu.router import Router

T = TypeVar("T")


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


class Ticks(Generic[T]):
    """Counts a router's ticks (the worker calls ``router.tick()`` once per report period) and takes a
    ``probe`` at the start of a chosen one, before it sends anything: what earlier ticks sent went out a
    whole period before, so it has arrived, and a window between two probes holds exactly the sends of
    the ticks in between."""

    def __init__(self, router: Router, probe: Callable[[], T]) -> None:
        self.n = 0
        self._wanted: dict[int, asyncio.Future[T]] = {}
        original = router.tick

        def counting() -> None:
            self.n += 1
            wanted = self._wanted.pop(self.n, None)
            if wanted is not None and not wanted.done():
                wanted.set_result(probe())
            original()

        router.tick = counting  # type: ignore[method-assign]

    async def probe_at(self, tick: int, timeout: float = 60) -> T:  # noqa: ASYNC109
        """The probe taken as tick number ``tick`` starts (it must not have started yet)."""
        assert self.n < tick, f"tick {tick} already started (now {self.n})"
        future = self._wanted[tick] = asyncio.get_running_loop().create_future()
        return await asyncio.wait_for(future, timeout)


def window(before: Counter[str], after: Counter[str]) -> dict[str, int]:
    """What arrived between two snapshots, by type (zero counts left out)."""
    return {k: v for k, v in (after - before).items() if v}
