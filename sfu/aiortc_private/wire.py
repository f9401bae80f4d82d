"""The send side: aiortc's RTP sender loop is never started, and packets go out encrypted through
the DTLS transport's SRTP session and the nominated ICE pair's socket, with no coroutine per packet.

Private aiortc surface: ``RTCRtpSender.send`` (replaced on the instance by a function that only
records the negotiated parameters), ``RTCRtpSender._ssrc`` / ``_rtx_ssrc``, ``RTCDtlsTransport._tx_srtp``
(its ``protect`` / ``protect_rtcp``). Private aioice surface: ``Connection._nominated`` and the pair's
``protocol.transport.sendto`` and ``remote_addr``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pylibsrtp
from aiortc import RTCRtpSender
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtpSendParameters

from sfu.aiortc_private.ice import enlarge_receive_buffer, ice_connection
from sfu.aiortc_private.srtp import _process


def capture_send(sender: RTCRtpSender, on_params: Callable[[RTCRtpSendParameters], None]) -> None:
    """Replace aiortc's send loop (it would encode, and send its own SR with zero counts)."""

    async def send(parameters: RTCRtpSendParameters) -> None:
        on_params(parameters)

    sender.send = send  # type: ignore[method-assign]


def sender_ssrcs(sender: RTCRtpSender) -> tuple[int, int]:
    """The SSRC and RTX SSRC aiortc announced in the SDP for this sender."""
    return sender._ssrc, sender._rtx_ssrc


@dataclass
class WireSender:
    """Encrypt-and-send on a connected DTLS transport, with no coroutine or object per packet."""

    dtls: RTCDtlsTransport
    sent_packets: int = 0
    sent_bytes: int = 0
    dropped: int = 0
    """Packets SRTP could not protect (bigger than any datagram, or refused): dropped, not sent."""

    def __post_init__(self) -> None:
        self._conn = ice_connection(self.dtls)
        self._pair: Any = None
        self._srtp: pylibsrtp.Session = self.dtls._tx_srtp
        self.protect: Callable[[bytes], bytes] = self._srtp.protect
        """The fast path: pylibsrtp's own method. It raises for packets its buffer cannot hold (see
        :meth:`send_rtp`, the path that never raises)."""
        self.protect_rtcp: Callable[[bytes], bytes] = self._srtp.protect_rtcp
        self.sendto: Callable[[bytes, Any], None] = _discard
        self.addr: Any = None
        self.refresh()

    def refresh(self) -> bool:
        """Follow the nominated candidate pair; False when there is none (closed)."""
        pair = self._conn._nominated.get(1)
        if pair is None:
            self.sendto = _discard
            self._pair = None
            return False
        if pair is not self._pair:
            self._pair = pair
            enlarge_receive_buffer(pair.protocol.transport)
            self.sendto = pair.protocol.transport.sendto
            self.addr = pair.remote_addr
        return True

    def send_rtp(self, packet: bytes) -> bool:
        """Protect and send one RTP packet of any size the transport carries; never raises. False: SRTP
        refused it (dropped, counted in ``dropped``)."""
        data = _process(self._srtp, self.protect, packet)
        if data is None:
            self.dropped += 1
            return False
        self.sendto(data, self.addr)
        return True

    def send_rtcp(self, packet: bytes) -> None:
        """Protect and send one (compound) RTCP packet of any size; never raises."""
        data = _process(self._srtp, self.protect_rtcp, packet)
        if data is None:
            self.dropped += 1
            return
        self.sendto(data, self.addr)


def _discard(data: bytes, addr: Any) -> None:
    return None
