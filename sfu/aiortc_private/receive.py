"""The receive side: decrypted RTP/RTCP routed to the SFU's handlers, and the socket-level demux that
takes SRTP past aioice and aiortc's DTLS task once DTLS is connected.

Private aiortc surface: ``RTCRtpReceiver.receive`` (replaced on the instance: aiortc's receive loop
is never started); ``RTCDtlsTransport._handle_rtp_data`` / ``_handle_rtcp_data`` (instance attributes
replace the methods: aiortc never parses or decodes our packets); ``RTCDtlsTransport._rx_srtp``.
Private aioice surface: ``Connection._protocols`` and ``_nominated``, ``StunProtocol.datagram_received``
(replaced on the instance), a pair's ``protocol`` and ``remote_addr``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pylibsrtp
from aiortc import RTCRtpReceiver
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtpReceiveParameters

from sfu.aiortc_private.ice import ice_connection
from sfu.aiortc_private.srtp import guard_unprotect


def capture_receive(receiver: RTCRtpReceiver, on_params: Callable[[RTCRtpReceiveParameters], None]) -> None:
    """Replace aiortc's receive loop: we only want the negotiated parameters."""

    async def receive(parameters: RTCRtpReceiveParameters) -> None:
        on_params(parameters)

    receiver.receive = receive  # type: ignore[method-assign]


RECEIVE_BATCH = 4
"""Decrypted RTP packets handed on before the DTLS task lets the loop poll its sockets again."""


def hook_dtls(dtls: RTCDtlsTransport, on_rtp: Callable[[bytes], None], on_rtcp: Callable[[bytes], None],
              on_error: Callable[[Exception], None] | None = None, demux: ReceiveDemux | None = None) -> None:
    """Route decrypted RTP and RTCP of this DTLS transport to our (synchronous) handlers.

    An exception out of a handler goes to ``on_error`` (the SFU counts and logs it; without one the
    packet is just dropped), never into aiortc's DTLS task: that task would die, the peer connection
    close, and every track on it stop.

    Every :data:`RECEIVE_BATCH` packets the task yields to the loop. aioice's queue hands a backlog
    over without suspending, so a publisher's task would otherwise forward everything queued in one
    step while its socket, and the STUN consent checks behind the media in it, waited: a worker
    running behind answered them late, and after six late answers (~30 s) the publisher hung up.
    Yielding lets the loop read every socket between batches (STUN is answered as it is read).

    With ``demux`` (the SFU's transports), SRTP and SRTCP from the nominated pair skip aioice and
    that task altogether once DTLS is connected (:func:`demux_receive`); the hooks above then only see
    what was queued before, and datagrams from another address.
    """
    if on_error is None:
        on_error = _ignore
    handled = [0]

    async def handle_rtp(data: bytes, arrival_time_ms: int) -> None:
        try:
            on_rtp(data)
        except Exception as exc:
            on_error(exc)
        handled[0] += 1
        if handled[0] >= RECEIVE_BATCH:
            handled[0] = 0
            await asyncio.sleep(0)

    async def handle_rtcp(data: bytes) -> None:
        try:
            on_rtcp(data)
        except Exception as exc:
            on_error(exc)

    dtls._handle_rtp_data = handle_rtp  # type: ignore[method-assign]
    dtls._handle_rtcp_data = handle_rtcp  # type: ignore[method-assign]

    @dtls.on("statechange")
    def _state() -> None:
        if dtls.state == "connected":  # SRTP sessions exist; the receive task starts right after this
            guard_unprotect(dtls)
            if demux is not None:
                demux_receive(dtls, on_rtp, on_rtcp, on_error, demux)


# --- receive demux (issue 18: the receive path without aioice's STUN parse nor aiortc's DTLS task) ---


@dataclass
class ReceiveDemux:
    """What the socket-level demux of one transport handled (:func:`demux_receive`)."""

    rtp: int = 0
    """SRTP datagrams decrypted at the socket and handed to the RTP handler."""
    rtcp: int = 0
    """SRTCP datagrams decrypted at the socket and handed to the RTCP handler."""
    refused: int = 0
    """SRTP/SRTCP datagrams that did not decrypt (bad tag, replay, too big): dropped."""
    installed: int = 0
    """Sockets (aioice protocols) the demux sits on."""


def demux_receive(dtls: RTCDtlsTransport, on_rtp: Callable[[bytes], None], on_rtcp: Callable[[bytes], None],
                  on_error: Callable[[Exception], None], counts: ReceiveDemux) -> None:
    """Classify each datagram of ``dtls``'s ICE sockets by its first byte (RFC 7983) where it is read.

    SRTP/SRTCP (128-191) from the address of the nominated pair is decrypted and handed to the
    synchronous handlers right in the socket callback: no ``stun.parse_message`` (which raises and
    catches a ValueError for every media datagram), no ``asyncio.Queue`` hop into aiortc's DTLS task,
    no ``datetime`` arrival stamp thrown away. STUN (0-3), DTLS (20-63), and SRTP from any other
    address (an ICE pair being checked) keep aioice's and aiortc's path: consent freshness, DTLS
    retransmissions, the DTLS close, and a pair that changes later all work as before.

    Call once DTLS is connected (the receiving SRTP session exists). Every socket (aioice protocol) of
    the connection gets the demux, so a nomination that moves to another local candidate is followed.
    """
    conn = ice_connection(dtls)
    session = dtls._rx_srtp
    if session is None:
        return
    unprotect, unprotect_rtcp = session.unprotect, session.unprotect_rtcp
    nominated = conn._nominated
    srtp_error = pylibsrtp.Error
    for protocol in conn._protocols:
        if getattr(protocol, "_switchboard_demux", False):
            continue
        original = protocol.datagram_received
        seen: list[Any] = [None, None]  # the nominated pair last seen, its remote address if on this socket

        def datagram_received(data: bytes, addr: Any, protocol: Any = protocol,
                              original: Callable[[bytes, Any], None] = original, seen: list[Any] = seen) -> None:
            if len(data) > 11 and 127 < data[0] < 192:
                pair = nominated.get(1)
                if pair is not seen[0]:  # the nomination moved (or first packet): where media comes from now
                    seen[0] = pair
                    seen[1] = pair.remote_addr if pair is not None and pair.protocol is protocol else None
                remote = seen[1]
                if remote is not None and addr[0] == remote[0] and addr[1] == remote[1]:
                    try:
                        if 191 < data[1] < 209:  # RTCP packet types 192-208 (as aiortc's is_rtcp)
                            packet = unprotect_rtcp(data)
                            counts.rtcp += 1
                            on_rtcp(packet)
                        else:
                            packet = unprotect(data)
                            counts.rtp += 1
                            on_rtp(packet)
                    except srtp_error:
                        counts.refused += 1
                    except Exception as exc:  # a bug in a handler: never into the socket callback
                        on_error(exc)
                    return
            original(data, addr)

        protocol.datagram_received = datagram_received
        protocol._switchboard_demux = True
        counts.installed += 1


def _ignore(exc: Exception) -> None:
    return None
