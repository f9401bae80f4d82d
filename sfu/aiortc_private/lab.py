"""Test, lab and load-generator helpers that reach into a client peer connection: consent checks,
moving the nominated pair, dropping, counting, recording and stamping packets. The SFU's own path
uses none of them (``sfu.measure``'s counting viewers use :func:`count_incoming_rtp` and
:class:`SocketRemb`).

Private aioice surface: ``Connection._nominated``, ``_protocols``, ``_remote_candidates``,
``build_request`` and ``remote_password`` (as ``query_consent`` uses them), ``StunProtocol.request``
and ``datagram_received`` (replaced on the instance), ``CandidatePair`` and its ``State``. Private
aiortc surface: ``RTCDtlsTransport._send_rtp`` (wrapped on the instance; called to send a REMB) and
``_handle_rtp_data`` (wrapped on the instance); ``aiortc.rate.RemoteBitrateEstimator`` (as
:class:`sfu.aiortc_private.rate.QuickRemoteBitrateEstimator`: the same REMBs for less CPU).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time
from collections.abc import Callable
from typing import Any

import aioice
from aiortc import RTCPeerConnection
from aiortc import rtp as aiortc_rtp

from sfu.aiortc_private.arrival import ArrivalClock
from sfu.aiortc_private.ice import enlarge_receive_buffer, ice_connection
from sfu.aiortc_private.rate import QuickRemoteBitrateEstimator


async def consent_check(pc: RTCPeerConnection) -> bool:
    """Test and lab helper: one ICE consent check (RFC 7675) on ``pc``'s nominated pair, as aioice's
    ``query_consent`` sends it; True when the other end answered."""
    conn = ice_connection(pc.getTransceivers()[0].sender.transport)
    pair = conn._nominated.get(1)
    if pair is None or conn.remote_password is None:
        return False
    try:
        await pair.protocol.request(conn.build_request(pair, nominate=False), pair.remote_addr,
                                    integrity_key=conn.remote_password.encode("utf8"))
    except aioice.stun.TransactionError:
        return False
    return True


def renominate(pc: RTCPeerConnection, *, local_host: str | None = None, remote_host: str | None = None) -> None:
    """Test and lab helper: move ``pc``'s nominated pair to its socket on ``local_host`` and/or the remote
    candidate on ``remote_host`` (None: that end as it is). aioice has no call for it: a test moves both
    peers."""
    conn = ice_connection(pc.getTransceivers()[0].sender.transport)
    current = conn._nominated[1]
    protocol = current.protocol if local_host is None else \
        next(p for p in conn._protocols if p.local_candidate.host == local_host)
    remote = current.remote_candidate if remote_host is None else \
        next(c for c in conn._remote_candidates if c.component == 1 and c.host == remote_host)
    pair = aioice.ice.CandidatePair(protocol, remote)
    pair.state = aioice.ice.CandidatePair.State.SUCCEEDED
    pair.nominated = True
    conn._nominated[1] = pair


def local_hosts(pc: RTCPeerConnection) -> list[str]:
    """Test helper: the addresses of ``pc``'s ICE sockets (host candidates)."""
    return [p.local_candidate.host for p in ice_connection(pc.getTransceivers()[0].sender.transport)._protocols]


def nominated_hosts(pc: RTCPeerConnection) -> tuple[str, str] | None:
    """Test helper: (local, remote) address of ``pc``'s nominated pair."""
    pair = ice_connection(pc.getTransceivers()[0].sender.transport)._nominated.get(1)
    return None if pair is None else (pair.local_candidate.host, pair.remote_candidate.host)


def drop_incoming(pc: RTCPeerConnection, fraction: float, seed: int = 1) -> Callable[[], int]:
    """Test and lab helper: drop ``fraction`` of incoming SRTP (not RTCP) datagrams of ``pc``.

    Returns a function giving how many were dropped. Call once ICE is connected: the drop sits at
    the nominated pair's socket callback.
    """
    rng = random.Random(seed)
    dropped = [0]
    for conn in {id(c): c for c in (ice_connection(t.sender.transport) for t in pc.getTransceivers())}.values():
        pair = conn._nominated.get(1)
        if pair is None:
            raise RuntimeError("ICE is not connected yet")
        original = pair.protocol.datagram_received

        def datagram_received(data: bytes, addr: Any, original: Callable[..., None] = original) -> None:
            if len(data) > 1 and 128 <= data[0] < 192 and not 192 <= data[1] <= 223 and rng.random() < fraction:
                dropped[0] += 1
                return
            original(data, addr)

        pair.protocol.datagram_received = datagram_received
    return lambda: dropped[0]


def count_incoming_rtp(pc: RTCPeerConnection, on_rtp: Callable[[bytes, float | None], None],
                       kernel_time: bool = True) -> list[ArrivalClock]:
    """Load generator: hand every incoming RTP datagram of ``pc`` to ``on_rtp`` at the socket, still
    encrypted (the SRTP header is clear: SSRC and sequence number are readable), with the kernel's
    arrival time of it (unix time; None when the kernel gave none: :class:`ArrivalClock`), and keep
    it from aiortc.

    STUN (consent), DTLS and RTCP still reach aiortc. Call once ICE is connected (the pair is nominated).
    Every local socket of the connection is hooked, not only the one of the pair this side nominated:
    the other end sends on the pair *it* nominated, which can be another of our host candidates (a
    second interface), and a datagram counted past the socket would carry the event loop's time.
    Returns the sockets' clocks (how many stamps the kernel gave). ``kernel_time=False``: never ask
    the kernel (every arrival None: the caller's own clock; a comparison run).
    """
    clocks: list[ArrivalClock] = []
    for conn in {id(c): c for c in (ice_connection(t.sender.transport) for t in pc.getTransceivers())}.values():
        if conn._nominated.get(1) is None:
            raise RuntimeError("ICE is not connected yet")
        for protocol in conn._protocols:
            clocks.append(_count_at(protocol, on_rtp, kernel_time))
    return clocks


def _count_at(protocol: Any, on_rtp: Callable[[bytes, float | None], None], kernel_time: bool) -> ArrivalClock:
    """Hook one of aioice's ``StunProtocol``s: RTP-shaped datagrams go to ``on_rtp`` with their stamp."""
    enlarge_receive_buffer(protocol.transport)
    clock = ArrivalClock(protocol.transport if kernel_time else None)
    original = protocol.datagram_received

    def datagram_received(data: bytes, addr: Any) -> None:
        if len(data) >= 12 and 128 <= data[0] < 192 and not 192 <= data[1] <= 223:
            on_rtp(data, clock.stamp())
            return
        original(data, addr)

    protocol.datagram_received = datagram_received
    return clock


def stamp_transport_cc(pc: RTCPeerConnection, ext_id: int) -> list[int]:
    """Test and lab helper: make a client ``pc`` (aiortc writes no ``transport-cc`` itself) number every
    RTP packet it sends with a transport-wide sequence in a one-byte extension element ``ext_id``,
    added to the plaintext packet just before SRTP. Returns the numbers written, in order."""
    written: list[int] = []
    for dtls in {id(t.sender.transport): t.sender.transport for t in pc.getTransceivers()}.values():
        original = dtls._send_rtp

        async def send_rtp(data: bytes, original: Callable[[bytes], Any] = original) -> None:
            if len(data) >= 12 and not 192 <= data[1] <= 223:
                seq = len(written) & 0xFFFF
                written.append(seq)
                data = _with_element(data, ext_id, seq.to_bytes(2, "big"))
            await original(data)

        dtls._send_rtp = send_rtp  # type: ignore[method-assign]
    return written


def _with_element(data: bytes, ext_id: int, value: bytes) -> bytes:
    """An RTP packet with one more one-byte-form extension element (the block made when absent)."""
    b0 = data[0]
    start = 12 + 4 * (b0 & 0x0F)
    new = bytes([(ext_id << 4) | (len(value) - 1)]) + value
    if b0 & 0x10:
        words = (data[start + 2] << 8) | data[start + 3]
        end = start + 4 + 4 * words
        elems = data[start + 4:end].rstrip(b"\0") + new
    else:
        end = start
        elems = new
    elems += bytes(-len(elems) % 4)
    return (bytes([b0 | 0x10]) + data[1:start] + b"\xbe\xde" + (len(elems) // 4).to_bytes(2, "big") + elems
            + data[end:])


def record_incoming_rtp(pc: RTCPeerConnection, on_rtp: Callable[[bytes], None]) -> None:
    """Test helper: hand every decrypted RTP packet a client ``pc`` receives to ``on_rtp`` (then to aiortc)."""
    for dtls in {id(t.receiver.transport): t.receiver.transport for t in pc.getTransceivers()}.values():
        original = dtls._handle_rtp_data

        async def handle(data: bytes, arrival_time_ms: int, original: Callable[..., Any] = original) -> None:
            on_rtp(data)
            await original(data, arrival_time_ms)

        dtls._handle_rtp_data = handle  # type: ignore[method-assign]


_ABS_SEND_TIME_EXTMAP = re.compile(r"^a=extmap:(\d+)(?:/\w+)? http://www\.webrtc\.org/experiments/rtp-hdrext/abs-send-time",
                                  re.MULTILINE)


class SocketRemb:
    """Load generator: the REMB an aiortc viewer sends (its receiver feeds aiortc's
    ``RemoteBitrateEstimator``, here its quicker equal :class:`QuickRemoteBitrateEstimator`, with every
    packet stamped with ``abs-send-time``, RTX included), for a
    viewer whose packets are counted at the socket (:func:`count_incoming_rtp`) and never reach
    aiortc. The header and its extensions are clear in SRTP; the REMB goes out over the peer
    connection's SRTCP. Make one with :meth:`of` (None when ``abs-send-time`` was not negotiated).
    Arrival times should be the kernel's: stamped when a busy event loop got round to each packet,
    the loop's delays look like queueing on the link and the estimator holds the rate down."""

    def __init__(self, pc: RTCPeerConnection, ext_id: int) -> None:
        self.estimator = QuickRemoteBitrateEstimator()
        self.ext_id = ext_id
        self.ssrc = random.getrandbits(31) | 1
        self.dtls = pc.getTransceivers()[0].receiver.transport
        self.sent: list[int] = []
        """The bitrates of the REMBs sent (the last few)."""
        self._tasks: set[asyncio.Future[None]] = set()

    @classmethod
    def of(cls, pc: RTCPeerConnection) -> SocketRemb | None:
        found = _ABS_SEND_TIME_EXTMAP.search(pc.localDescription.sdp if pc.localDescription else "")
        return cls(pc, int(found.group(1))) if found and pc.getTransceivers() else None

    def on_rtp(self, data: bytes, arrival_ms: int | None = None) -> None:
        """An SRTP datagram as it arrived: at ``arrival_ms`` (unix ms: give the kernel's arrival time,
        :func:`count_incoming_rtp`, as a browser's network thread would stamp it), else now."""
        if not data[0] & 0x10:
            return
        start = 12 + 4 * (data[0] & 0x0F)
        if data[start:start + 2] != b"\xbe\xde":
            return
        end = start + 4 + 4 * int.from_bytes(data[start + 2:start + 4], "big")
        i, value = start + 4, None
        while i < end:
            b = data[i]
            if b == 0:
                i += 1
                continue
            size = (b & 0x0F) + 1
            if b >> 4 == self.ext_id and size == 3:
                value = int.from_bytes(data[i + 1:i + 4], "big")
                break
            i += 1 + size
        if value is None:
            return
        now_ms = arrival_ms if arrival_ms is not None else int(time.time() * 1000)
        remb = self.estimator.add(arrival_time_ms=now_ms, abs_send_time=value,
                                  payload_size=len(data) - end, ssrc=int.from_bytes(data[8:12], "big"))
        if remb is not None:
            self.sent = [*self.sent[-7:], remb[0]]
            packet = aiortc_rtp.RtcpPsfbPacket(fmt=aiortc_rtp.RTCP_PSFB_APP, ssrc=self.ssrc, media_ssrc=0,
                                                fci=aiortc_rtp.pack_remb_fci(*remb))
            task = asyncio.ensure_future(self._send(bytes(packet)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, data: bytes) -> None:
        with contextlib.suppress(ConnectionError):
            await self.dtls._send_rtp(data)
