"""Every touch of aiortc / aioice / pylibsrtp private internals, in one package.

The SFU negotiates with aiortc's public API (RTCPeerConnection, SDP) and then takes over the media:

* decrypted RTP/RTCP is taken from ``RTCDtlsTransport._handle_rtp_data`` / ``_handle_rtcp_data``
  (instance attributes replace the methods: aiortc never parses or decodes our packets), and our
  receive hooks never let an exception into aiortc's DTLS task (it would die and close the peer):
  :mod:`.receive`;
* once DTLS is connected, SRTP/SRTCP from the nominated pair is taken at aioice's socket callback
  (``StunProtocol.datagram_received`` replaced on the instance) and decrypted with ``_rx_srtp``, so
  media skips aioice's STUN parse and aiortc's DTLS task; STUN and DTLS keep their path: :mod:`.receive`;
* aiortc's own RTP sender/receiver loops are never started (``send``/``receive`` are replaced on
  the instance by functions that only record the negotiated parameters): :mod:`.wire`, :mod:`.receive`;
* packets go out through ``_tx_srtp.protect`` and the nominated aioice pair's datagram transport,
  with no coroutine per packet: :mod:`.wire`;
* pylibsrtp's work buffer (``Session._cdata``/``_buffer``, 1500 bytes, of which it keeps 144 for the
  trailer: ``protect`` refuses RTP above 1356 bytes) is replaced by a bigger one when a packet needs it,
  up to the largest UDP datagram, so any packet the transport can carry is protected and unprotected:
  :mod:`.srtp`;
* ICE host candidates are gathered on the node's configured addresses (aioice skips 127.0.0.1): :mod:`.ice`;
* a peer connection is built around a given DTLS certificate (aiortc generates one per connection),
  whose SSL context is made once, and may take the DTLS server role when the offer says ``actpass``:
  :mod:`.certificate`;
* the native fan-out takes a viewer transport's outgoing SRTP keys and nominated socket: :mod:`.native_keys`,
  and encrypts with sessions pylibsrtp's own libsrtp (OpenSSL) makes, through its ``srtp_protect``: :mod:`.srtp`;
* tests, the lab and the load generator reach into client peer connections: :mod:`.lab`; the load
  generator's counting viewers stamp each datagram with the kernel's arrival time, asked of the socket
  under aioice's transport: :mod:`.arrival`;
* aiortc's receive-side bandwidth estimator (REMB) with its counter and its frame-period minimum
  rewritten for less CPU, the same figures, which aiortc's receivers can be made to build: :mod:`.rate`.

Callers import this package (``from sfu import aiortc_private as private``) and look names up on it
when they call, so a test that patches ``sfu.aiortc_private.srtp_tx_keying`` reaches ``sfu.fanout``.
The modules here call each other directly: to change what ``WireSender`` calls, patch the name in the
module that uses it (``sfu.aiortc_private.wire``), not here.

:data:`PINNED` and :func:`signatures` (:mod:`.versions`), with ``tests/sfu/test_aiortc_private.py``,
check every name used here, so an upgrade fails loudly.
"""

from __future__ import annotations

from sfu.aiortc_private.arrival import SIOCGSTAMPNS, ArrivalClock
from sfu.aiortc_private.certificate import (
    SharedCertificate,
    dtls_role,
    pc_certificates,
    peer_connection,
    take_dtls_server_role,
)
from sfu.aiortc_private.ice import RECEIVE_BUFFER, enlarge_receive_buffer, ice_connection, restrict_host_addresses
from sfu.aiortc_private.lab import (
    SocketRemb,
    consent_check,
    count_incoming_rtp,
    drop_incoming,
    local_hosts,
    nominated_hosts,
    record_incoming_rtp,
    renominate,
    stamp_transport_cc,
)
from sfu.aiortc_private.native_keys import nominated_target, srtp_tx_keying
from sfu.aiortc_private.rate import (
    QuickOveruseEstimator,
    QuickRateCounter,
    QuickRemoteBitrateEstimator,
    aiortc_sources,
    use_quick_rate_estimation,
)
from sfu.aiortc_private.receive import RECEIVE_BATCH, ReceiveDemux, capture_receive, demux_receive, hook_dtls
from sfu.aiortc_private.srtp import (
    MAX_DATAGRAM,
    SRTP_TRAILER,
    BundledSender,
    bundled_srtp_sender,
    grow_srtp_buffer,
    guard_unprotect,
    srtp_buffer_size,
    srtp_error,
)
from sfu.aiortc_private.versions import PINNED, check_versions, installed_versions, signatures
from sfu.aiortc_private.wire import WireSender, capture_send, sender_ssrcs

__all__ = [
    "MAX_DATAGRAM",
    "PINNED",
    "RECEIVE_BATCH",
    "RECEIVE_BUFFER",
    "SIOCGSTAMPNS",
    "SRTP_TRAILER",
    "ArrivalClock",
    "BundledSender",
    "QuickOveruseEstimator",
    "QuickRateCounter",
    "QuickRemoteBitrateEstimator",
    "ReceiveDemux",
    "SharedCertificate",
    "SocketRemb",
    "WireSender",
    "aiortc_sources",
    "bundled_srtp_sender",
    "capture_receive",
    "capture_send",
    "check_versions",
    "consent_check",
    "count_incoming_rtp",
    "demux_receive",
    "drop_incoming",
    "dtls_role",
    "enlarge_receive_buffer",
    "grow_srtp_buffer",
    "guard_unprotect",
    "hook_dtls",
    "ice_connection",
    "installed_versions",
    "local_hosts",
    "nominated_hosts",
    "nominated_target",
    "pc_certificates",
    "peer_connection",
    "record_incoming_rtp",
    "renominate",
    "restrict_host_addresses",
    "sender_ssrcs",
    "signatures",
    "srtp_buffer_size",
    "srtp_error",
    "srtp_tx_keying",
    "stamp_transport_cc",
    "take_dtls_server_role",
    "use_quick_rate_estimation",
]
