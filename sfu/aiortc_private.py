"""Every touch of aiortc / aioice / pylibsrtp private internals, in one place.

The SFU negotiates with aiortc's public API (RTCPeerConnection, SDP) and then takes over the media:

* decrypted RTP/RTCP is taken from ``RTCDtlsTransport._handle_rtp_data`` / ``_handle_rtcp_data``
  (instance attributes replace the methods: aiortc never parses or decodes our packets);
* aiortc's own RTP sender/receiver loops are never started (``send``/``receive`` are replaced on
  the instance by functions that only record the negotiated parameters);
* packets go out through ``_tx_srtp.protect`` and the nominated aioice pair's datagram transport,
  with no coroutine per packet;
* pylibsrtp's work buffer (``Session._cdata``/``_buffer``, 1500 bytes, of which it keeps 144 for the
  trailer: ``protect`` refuses RTP above 1356 bytes) is replaced by a bigger one when a packet needs it,
  up to the largest UDP datagram, so any packet the transport can carry is protected and unprotected;
* our receive hooks never let an exception into aiortc's DTLS task (it would die and close the peer);
* once DTLS is connected, SRTP/SRTCP from the nominated pair is taken at aioice's socket callback
  (``StunProtocol.datagram_received`` replaced on the instance) and decrypted with ``_rx_srtp``, so
  media skips aioice's STUN parse and aiortc's DTLS task; STUN and DTLS keep their path;
* ICE host candidates are gathered on the node's configured addresses (aioice skips 127.0.0.1);
* a peer connection is built around a given DTLS certificate (aiortc generates one per connection),
  whose SSL context is made once, and may take the DTLS server role when the offer says ``actpass``.

``tests/sfu/test_aiortc_private.py`` checks every name used here, so an upgrade fails loudly.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aioice
import aiortc
import pylibsrtp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc import rtcdtlstransport as _rtcdtlstransport
from aiortc import rtcpeerconnection as _rtcpeerconnection
from aiortc.rtcdtlstransport import RTCCertificate, RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtpReceiveParameters, RTCRtpSendParameters
from pylibsrtp._binding import ffi as _srtp_ffi  # type: ignore[import-not-found]

PINNED = {"aiortc": "1.16.0", "aioice": "0.13.0", "pylibsrtp": "1.0.0"}
"""The exact versions whose internals this module was written against."""


def installed_versions() -> dict[str, str]:
    return {"aiortc": aiortc.__version__, "aioice": aioice.__version__, "pylibsrtp": pylibsrtp.__version__}


def check_versions() -> None:
    """Raise RuntimeError when the installed versions differ from :data:`PINNED`."""
    found = installed_versions()
    if found != PINNED:
        raise RuntimeError(f"sfu.aiortc_private was written for {PINNED}, found {found}")


def ice_connection(dtls: RTCDtlsTransport) -> Any:
    """The aioice Connection under a DTLS transport."""
    return dtls.transport.iceGatherer._connection


def restrict_host_addresses(pc: RTCPeerConnection, addresses: tuple[str, ...]) -> None:
    """Make every ICE gatherer of ``pc`` use exactly ``addresses`` for host candidates.

    Call after transceivers exist and before ``setLocalDescription`` (which gathers).
    """
    for transceiver in pc.getTransceivers():
        conn = ice_connection(transceiver.sender.transport)
        if getattr(conn, "_switchboard_restricted", False):
            continue

        async def gather(conn: Any = conn) -> None:
            if conn._local_candidates_start:
                return
            conn._local_candidates_start = True
            for component in conn._components:
                conn._local_candidates += await conn.get_component_candidates(
                    component=component, addresses=list(addresses))
            conn._local_candidates_end = True

        conn.gather_candidates = gather
        conn._switchboard_restricted = True


class SharedCertificate(RTCCertificate):
    """An RTCCertificate meant for many peer connections: its SSL context (cipher list, SRTP profiles,
    key and certificate loaded: ~0.35 ms with OpenSSL 3) is built once per SRTP profile list."""

    def __init__(self, key: Any, cert: Any) -> None:
        super().__init__(key=key, cert=cert)
        self._contexts: dict[tuple[bytes, ...], Any] = {}

    def _create_ssl_context(self, srtp_profiles: list[Any]) -> Any:
        names = tuple(p.openssl_profile for p in srtp_profiles)
        ctx = self._contexts.get(names)
        if ctx is None:
            ctx = self._contexts[names] = super()._create_ssl_context(srtp_profiles)
        return ctx


class _GivenCertificate:
    """Stands in for ``RTCCertificate`` in aiortc's peer connection module during one ``__init__``."""

    given: RTCCertificate

    @classmethod
    def generateCertificate(cls) -> RTCCertificate:
        return cls.given


def peer_connection(configuration: RTCConfiguration, certificate: RTCCertificate) -> RTCPeerConnection:
    """An RTCPeerConnection that uses ``certificate`` instead of generating a key and certificate.

    aiortc has no public way to pass one (``RTCConfiguration`` lacks ``certificates``): its ``__init__``
    calls ``RTCCertificate.generateCertificate()`` by its module-level name, which is swapped for the
    duration of that synchronous call (nothing else runs on the loop in between).
    """
    stand_in = type("GivenCertificate", (_GivenCertificate,), {"given": certificate})
    original = _rtcpeerconnection.RTCCertificate
    _rtcpeerconnection.RTCCertificate = stand_in  # type: ignore[misc, assignment]
    try:
        pc = RTCPeerConnection(configuration)
    finally:
        _rtcpeerconnection.RTCCertificate = original  # type: ignore[misc]
    if pc_certificates(pc) != [certificate]:
        raise RuntimeError("aiortc did not take the given DTLS certificate")
    return pc


def pc_certificates(pc: RTCPeerConnection) -> list[RTCCertificate]:
    """The certificates a peer connection hands to its DTLS transports."""
    return list(pc._RTCPeerConnection__certificates)  # type: ignore[attr-defined]


def take_dtls_server_role(pc: RTCPeerConnection) -> None:
    """After applying an offer that said ``a=setup:actpass``: answer ``passive`` (we are the DTLS server).

    aiortc as answerer always picks the client role (``active``), and as a DTLS client it offers only
    ECDHE-ECDSA suites, so a peer with an RSA certificate (GStreamer's default) has no suite in common.
    As the server we choose the suite for our own ECDSA key; the client's certificate may be RSA.
    """
    for transceiver in pc.getTransceivers():
        dtls = transceiver.receiver.transport
        if dtls._role == "auto":
            dtls._set_role("server")


def dtls_role(pc: RTCPeerConnection) -> str:
    """The DTLS role of the first transport (``auto``, ``client``, ``server``)."""
    return str(pc.getTransceivers()[0].receiver.transport._role)


def capture_receive(receiver: RTCRtpReceiver, on_params: Callable[[RTCRtpReceiveParameters], None]) -> None:
    """Replace aiortc's receive loop: we only want the negotiated parameters."""

    async def receive(parameters: RTCRtpReceiveParameters) -> None:
        on_params(parameters)

    receiver.receive = receive  # type: ignore[method-assign]


def capture_send(sender: RTCRtpSender, on_params: Callable[[RTCRtpSendParameters], None]) -> None:
    """Replace aiortc's send loop (it would encode, and send its own SR with zero counts)."""

    async def send(parameters: RTCRtpSendParameters) -> None:
        on_params(parameters)

    sender.send = send  # type: ignore[method-assign]


def sender_ssrcs(sender: RTCRtpSender) -> tuple[int, int]:
    """The SSRC and RTX SSRC aiortc announced in the SDP for this sender."""
    return sender._ssrc, sender._rtx_ssrc


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


SRTP_TRAILER = max(pylibsrtp.SRTP_MAX_TRAILER_LEN, pylibsrtp.SRTP_MAX_SRTCP_TRAILER_LEN)
"""Room pylibsrtp keeps after a packet in its work buffer (144 bytes for SRTP, 148 for SRTCP)."""
MAX_DATAGRAM = 65535
"""The largest UDP datagram: no packet the transport can carry is bigger."""


def srtp_buffer_size(session: pylibsrtp.Session) -> int:
    """The size of a pylibsrtp session's work buffer (1500 as pylibsrtp makes it)."""
    return len(session._cdata)


def grow_srtp_buffer(session: pylibsrtp.Session, packet_size: int) -> bool:
    """Give ``session`` a work buffer big enough for a packet of ``packet_size`` bytes plus the trailer.

    False (and nothing changed) when no UDP datagram is that big. The buffer only grows, by powers
    of two, so a session holds at most one big buffer: most never leave pylibsrtp's 1500 bytes.
    """
    if packet_size > MAX_DATAGRAM:
        return False
    needed = packet_size + SRTP_TRAILER
    if len(session._cdata) < needed:
        size = 1 << (needed - 1).bit_length()
        session._cdata = _srtp_ffi.new("char[]", size)
        session._buffer = _srtp_ffi.buffer(session._cdata)
    return True


def _process(session: pylibsrtp.Session, method: Callable[[bytes], bytes], packet: bytes) -> bytes | None:
    """``method`` (a bound method of ``session``) on ``packet``, growing the buffer once if it is too
    small; None when the packet cannot be processed (bigger than any datagram, or SRTP refused it)."""
    try:
        return method(packet)
    except ValueError:  # pylibsrtp: "packet is too long" for its buffer
        if not grow_srtp_buffer(session, len(packet)):
            return None
    except pylibsrtp.Error:
        return None
    try:
        return method(packet)
    except (ValueError, pylibsrtp.Error):
        return None


def guard_unprotect(dtls: RTCDtlsTransport) -> None:
    """Make the receiving SRTP session of a connected ``dtls`` take any datagram the transport carries.

    aiortc's receive loop catches only ``pylibsrtp.Error`` around ``unprotect``: a ``ValueError`` for a
    datagram over 1500 bytes would end its DTLS task. The instance's methods grow the buffer when
    needed, and turn a datagram that still cannot be processed into ``pylibsrtp.Error`` (dropped).
    """
    session = dtls._rx_srtp
    if session is None or getattr(session, "_switchboard_guarded", False):
        return
    for name in ("unprotect", "unprotect_rtcp"):
        original = getattr(session, name)

        def guarded(data: bytes, original: Callable[[bytes], bytes] = original) -> bytes:
            try:
                return original(data)
            except ValueError:
                out = _process(session, original, data)
                if out is None:
                    raise pylibsrtp.Error("datagram too long") from None
                return out

        setattr(session, name, guarded)
    session._switchboard_guarded = True  # type: ignore[attr-defined]


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

    def send_rtp(self, packet: bytes) -> None:
        """Protect and send one RTP packet of any size the transport carries; never raises."""
        data = _process(self._srtp, self.protect, packet)
        if data is None:
            self.dropped += 1
            return
        self.sendto(data, self.addr)

    def send_rtcp(self, packet: bytes) -> None:
        """Protect and send one (compound) RTCP packet of any size; never raises."""
        data = _process(self._srtp, self.protect_rtcp, packet)
        if data is None:
            self.dropped += 1
            return
        self.sendto(data, self.addr)


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


RECEIVE_BUFFER = 1 << 22
"""SO_RCVBUF asked for media sockets (the kernel caps it at net.core.rmem_max, 4 MiB here): a keyframe
burst arriving while the loop fans out the previous packet to every viewer must not overflow it."""


def enlarge_receive_buffer(transport: Any) -> None:
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)


def _discard(data: bytes, addr: Any) -> None:
    return None


def _ignore(exc: Exception) -> None:
    return None


def srtp_error() -> type[Exception]:
    return pylibsrtp.Error


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


def count_incoming_rtp(pc: RTCPeerConnection, on_rtp: Callable[[bytes], None]) -> None:
    """Load generator: hand every incoming RTP datagram of ``pc`` to ``on_rtp`` at the socket, still
    encrypted (the SRTP header is clear: SSRC and sequence number are readable), and keep it from aiortc.

    STUN (consent), DTLS and RTCP still reach aiortc. Call once ICE is connected (the pair is nominated).
    """
    for conn in {id(c): c for c in (ice_connection(t.sender.transport) for t in pc.getTransceivers())}.values():
        pair = conn._nominated.get(1)
        if pair is None:
            raise RuntimeError("ICE is not connected yet")
        protocol = pair.protocol
        enlarge_receive_buffer(protocol.transport)
        original = protocol.datagram_received

        def datagram_received(data: bytes, addr: Any, original: Callable[..., None] = original) -> None:
            if len(data) >= 12 and 128 <= data[0] < 192 and not 192 <= data[1] <= 223:
                on_rtp(data)
                return
            original(data, addr)

        protocol.datagram_received = datagram_received


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


def signatures() -> dict[str, str]:
    """The private signatures this module relies on (the upgrade test compares them)."""
    return {
        "RTCDtlsTransport._handle_rtp_data": str(inspect.signature(RTCDtlsTransport._handle_rtp_data)),
        "RTCDtlsTransport._handle_rtcp_data": str(inspect.signature(RTCDtlsTransport._handle_rtcp_data)),
        "RTCRtpSender.send": str(inspect.signature(RTCRtpSender.send)),
        "RTCRtpReceiver.receive": str(inspect.signature(RTCRtpReceiver.receive)),
        "Connection.get_component_candidates": str(inspect.signature(aioice.Connection.get_component_candidates)),
        "Connection.data_received": str(inspect.signature(aioice.Connection.data_received)),
        "StunProtocol.datagram_received": str(inspect.signature(aioice.ice.StunProtocol.datagram_received)),
        "RTCCertificate._create_ssl_context": str(inspect.signature(RTCCertificate._create_ssl_context)),
        "RTCDtlsTransport._set_role": str(inspect.signature(RTCDtlsTransport._set_role)),
        "RTCDtlsTransport._send_rtp": str(inspect.signature(RTCDtlsTransport._send_rtp)),
    }




# --- native fan-out (sfu/fanout.py): the viewer transport's outgoing SRTP keys and socket -----------

def srtp_tx_keying(dtls: RTCDtlsTransport) -> tuple[int, bytes] | None:
    """(libsrtp2 profile number, master key + salt) of a connected DTLS transport's outgoing SRTP, as
    aiortc derives them in ``_setup_srtp`` (RFC 5764: the exporter's client key first; the server
    sends with the second). None when there is no handshake or a profile aiortc does not list.

    The native fan-out builds its own libsrtp2 session from these (pylibsrtp's sessions belong to
    its statically linked libsrtp and are never shared); ``test_native_fanout`` checks that both
    sessions encrypt a packet to the same bytes."""
    ssl = dtls._ssl
    if ssl is None or dtls._tx_srtp is None:
        return None
    selected = ssl.get_selected_srtp_profile()
    profile = next((p for p in _rtcdtlstransport.SRTP_PROFILES if p.openssl_profile == selected), None)
    if profile is None:
        return None
    view = ssl.export_keying_material(b"EXTRACTOR-dtls_srtp", 2 * (profile.key_length + profile.salt_length))
    key = profile.get_key_and_salt(view, 1 if dtls._role == "server" else 0)
    return int(profile.libsrtp_profile), bytes(key)


def nominated_target(dtls: RTCDtlsTransport) -> tuple[int, str, int] | None:
    """(socket fd, remote host, remote port) of the nominated ICE pair of ``dtls``; None: no pair (yet,
    or any more), or its socket is closed."""
    pair = ice_connection(dtls)._nominated.get(1)
    if pair is None:
        return None
    transport = pair.protocol.transport
    if transport is None or transport.is_closing():
        return None
    sock = transport.get_extra_info("socket")
    if sock is None or sock.fileno() < 0:
        return None
    host, port = pair.remote_addr[0], pair.remote_addr[1]
    return sock.fileno(), host, port
