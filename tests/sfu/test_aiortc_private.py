"""Fails loudly when an aiortc/aioice/pylibsrtp upgrade changes the internals the SFU relies on."""

from __future__ import annotations

import inspect
import pkgutil

import aioice
import aiortc
import aiortc.rtcpeerconnection
import aiortc.sdp
import pylibsrtp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.rtcdtlstransport import RTCCertificate, RTCDtlsTransport

from sfu import aiortc_private

FANOUT_PATHS = ()
"""No Worker or WorkerPool here: the fan-out setting does not reach these tests; one run (tests/conftest.py)."""

EXPECTED_SIGNATURES = {
    "RTCDtlsTransport._handle_rtp_data": "(self, data: bytes, arrival_time_ms: int) -> None",
    "RTCDtlsTransport._handle_rtcp_data": "(self, data: bytes) -> None",
    "RTCRtpSender.send": "(self, parameters: aiortc.rtcrtpparameters.RTCRtpSendParameters) -> None",
    "RTCRtpReceiver.receive": "(self, parameters: aiortc.rtcrtpparameters.RTCRtpReceiveParameters) -> None",
    "Connection.get_component_candidates":
        "(self, component: int, addresses: list[str], timeout: int = 5) -> list[aioice.candidate.Candidate]",
    "Connection.data_received": "(self, data: bytes, component: int) -> None",
    "StunProtocol.datagram_received": "(self, data: bytes | str, addr: tuple[typing.Any, ...]) -> None",
    "RTCCertificate._create_ssl_context":
        "(self, srtp_profiles: list[aiortc.rtcdtlstransport.SRTPProtectionProfile]) -> OpenSSL.SSL.Context",
    "RTCDtlsTransport._set_role": "(self, role: str) -> None",
    "RTCDtlsTransport._send_rtp": "(self, data: bytes) -> None",
}


def test_every_module_names_its_private_surface_and_the_package_exports_it() -> None:
    """Each module of the package says which internals it touches; its public names are the package's
    (``from sfu.aiortc_private import X`` and ``aiortc_private.X`` reach every one of them)."""
    import importlib

    modules = [importlib.import_module(f"sfu.aiortc_private.{m.name}")
               for m in pkgutil.iter_modules(aiortc_private.__path__)]
    assert len(modules) > 1
    exported = set(aiortc_private.__all__)
    for module in modules:
        assert module.__doc__ and "private" in module.__doc__.lower(), module.__name__
        defined = {name for name, value in vars(module).items() if not name.startswith("_")
                   and getattr(value, "__module__", module.__name__) == module.__name__ and not inspect.ismodule(value)}
        assert defined <= exported, (module.__name__, defined - exported)
        for name in defined:
            assert getattr(aiortc_private, name) is getattr(module, name), name


def test_versions_are_the_pinned_ones() -> None:
    assert aiortc_private.installed_versions() == aiortc_private.PINNED
    aiortc_private.check_versions()


def test_private_signatures_unchanged() -> None:
    assert aiortc_private.signatures() == EXPECTED_SIGNATURES


def test_dtls_receive_path_calls_the_hooked_names() -> None:
    source = inspect.getsource(RTCDtlsTransport._recv_next)
    assert "await self._handle_rtp_data(data, arrival_time_ms=arrival_time_ms)" in source
    assert "await self._handle_rtcp_data(data)" in source
    assert "self._rx_srtp.unprotect(data)" in source


def test_sender_attributes_and_send_path() -> None:
    sender_init = inspect.getsource(RTCRtpSender.__init__)
    assert "self._ssrc = " in sender_init and "self._rtx_ssrc = " in sender_init
    assert "self._tx_srtp = Session(tx_policy)" in inspect.getsource(RTCDtlsTransport._setup_srtp)
    assert hasattr(pylibsrtp.Session, "protect") and hasattr(pylibsrtp.Session, "protect_rtcp")
    connect = inspect.getsource(RTCPeerConnection._RTCPeerConnection__connect)  # type: ignore[attr-defined]
    assert "await transceiver.sender.send(" in connect and "await transceiver.receiver.receive(" in connect


def test_aioice_connection_internals() -> None:
    init = inspect.getsource(aioice.Connection.__init__)
    for name in ("self._nominated", "self._local_candidates_start", "self._local_candidates_end",
                 "self._local_candidates", "self._components"):
        assert name in init, name
    assert "self.transport.sendto(data, addr)" in inspect.getsource(aioice.ice.StunProtocol.send_data)
    assert "remote_addr" in dir(aioice.ice.CandidatePair)
    assert "iceGatherer" in dir(RTCDtlsTransport(_ice_transport(), [_certificate()]).transport)
    assert "stop" in dir(RTCRtpReceiver)


def test_peer_connection_certificate_internals() -> None:
    """``peer_connection`` swaps the module-level name aiortc's __init__ calls; DTLS reads the context."""
    init = inspect.getsource(RTCPeerConnection.__init__)
    assert "self.__certificates = [RTCCertificate.generateCertificate()]" in init
    assert "RTCDtlsTransport(iceTransport, self.__certificates)" in inspect.getsource(
        RTCPeerConnection._RTCPeerConnection__createDtlsTransport)  # type: ignore[attr-defined]
    start = inspect.getsource(RTCDtlsTransport.start)
    assert "self.__local_certificate._create_ssl_context(" in start
    assert 'if self._role == "server":' in start and "set_accept_state()" in start
    certificate = aiortc_private.SharedCertificate.generateCertificate()
    pc = aiortc_private.peer_connection(RTCConfiguration(iceServers=[]), certificate)
    assert aiortc_private.pc_certificates(pc) == [certificate]
    assert aiortc.rtcpeerconnection.RTCCertificate is RTCCertificate  # put back


def test_answer_role_comes_from_the_transport_role() -> None:
    """``take_dtls_server_role`` works because createAnswer keeps a role already set (not ``auto``)."""
    answer = inspect.getsource(RTCPeerConnection.createAnswer)
    assert 'if dtlsTransport._role == "auto":' in answer and "media.dtls.role = dtlsTransport._role" in answer
    assert aiortc.sdp.DTLS_ROLE_SETUP["server"] == "passive"


def _ice_transport():  # type: ignore[no-untyped-def]
    from aiortc import RTCIceGatherer, RTCIceTransport

    return RTCIceTransport(RTCIceGatherer(iceServers=[]))


def _certificate():  # type: ignore[no-untyped-def]
    from aiortc.rtcdtlstransport import RTCCertificate

    return RTCCertificate.generateCertificate()


def test_pylibsrtp_work_buffer_internals() -> None:
    """``grow_srtp_buffer`` replaces ``_cdata``/``_buffer``; ``__process`` must still read them."""
    init = inspect.getsource(pylibsrtp.Session.__init__)
    assert 'self._cdata = ffi.new("char[]", 1500)' in init and "self._buffer = ffi.buffer(self._cdata)" in init
    process = inspect.getsource(pylibsrtp.Session._Session__process)  # type: ignore[attr-defined]
    assert "if len(data) > len(self._cdata) - trailer:" in process
    assert 'raise ValueError("packet is too long")' in process
    assert "self._buffer[0 : len(data)] = data" in process and "func(self._srtp[0], self._cdata, len_p)" in process
    assert (pylibsrtp.SRTP_MAX_TRAILER_LEN, pylibsrtp.SRTP_MAX_SRTCP_TRAILER_LEN) == (144, 148)
    from pylibsrtp._binding import ffi

    assert ffi is aiortc_private.srtp._srtp_ffi  # the buffers grow_srtp_buffer makes are pylibsrtp's own


def test_pylibsrtp_session_and_protect_the_native_plane_borrows() -> None:
    """``BundledSender`` hands the plane ``Session._srtp[0]`` (the ``srtp_t`` pylibsrtp made, freed by
    its ``ffi.gc``) and the address of its ``srtp_protect``, which the plane calls as
    ``int (*)(void *, void *, int *)``; a packet it encrypts must decrypt with a pylibsrtp session."""
    init = inspect.getsource(pylibsrtp.Session.__init__)
    assert 'srtp = ffi.new("srtp_t *")' in init and "lib.srtp_create(srtp, _policy)" in init
    assert "self._srtp = ffi.gc(srtp, lambda x: lib.srtp_dealloc(x[0]))" in init
    from pylibsrtp._binding import ffi, lib

    protect = ffi.addressof(lib, "srtp_protect")
    assert ffi.typeof(protect).cname == "srtp_err_status_t(*)(struct srtp_ctx_t_ *, void *, int *)"
    assert ffi.sizeof("srtp_err_status_t") == ffi.sizeof("int")
    key = bytes(range(46))
    sender = aiortc_private.bundled_srtp_sender(pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM, key[:44])
    assert sender is not None and sender.session == int(ffi.cast("uintptr_t", sender._session._srtp[0]))
    assert sender.protect == int(ffi.cast("uintptr_t", protect))
    call = ffi.cast("int (*)(void *, void *, int *)", sender.protect)
    packet = bytes([0x80, 96, 0, 1, 0, 0, 0, 9, 0, 0, 0, 7]) + b"payload"
    buf, n = ffi.new("char[]", 200), ffi.new("int *", len(packet))
    buf[0:len(packet)] = packet
    assert call(ffi.cast("void *", sender.session), buf, n) == 0 and n[0] == len(packet) + 16
    rx = pylibsrtp.Session(pylibsrtp.Policy(key=key[:44], ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND,
                                            srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM))
    assert rx.unprotect(ffi.buffer(buf, n[0])[:]) == packet
    assert aiortc_private.bundled_srtp_sender(pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM, key[:10]) is None


def test_dtls_receive_loop_drops_only_srtp_errors_and_dies_on_others() -> None:
    """Why ``guard_unprotect`` turns ValueError into pylibsrtp.Error, and why our hooks catch everything:
    any other exception ends ``__run`` and the DTLS transport goes ``closed``; the peer connection then
    closes itself (state ``closed``, which the SFU treats like ``failed``)."""
    start = inspect.getsource(RTCDtlsTransport.start)  # hook_dtls guards the SRTP sessions on "connected"
    assert start.index("self._setup_srtp()") < start.index("self._set_state(State.CONNECTED)") < \
        start.index("self._task = asyncio.ensure_future(self.__run())")
    assert 'self.emit("statechange")' in inspect.getsource(RTCDtlsTransport._set_state)
    recv = inspect.getsource(RTCDtlsTransport._recv_next)
    assert "except pylibsrtp.Error as exc:" in recv and "data = self._rx_srtp.unprotect(data)" in recv
    run = inspect.getsource(RTCDtlsTransport._RTCDtlsTransport__run)  # type: ignore[attr-defined]
    assert "self._set_state(State.CLOSED)" in run
    update = inspect.getsource(RTCPeerConnection._RTCPeerConnection__updateConnectionState)  # type: ignore[attr-defined]
    assert 'and dtlsStates == set(["closed"])' in update and "asyncio.ensure_future(self.close())" in update


def test_header_extensions_aiortc_negotiates_by_itself() -> None:
    """sfu.extensions adds the rest in the SDP text: aiortc negotiates these three, with the remote's
    ids, and never writes or reads ``transport-cc`` (the client helper stamps it before SRTP)."""
    from aiortc.codecs import HEADER_EXTENSIONS

    from sfu import extensions

    assert {k: [(e.id, e.uri) for e in v] for k, v in HEADER_EXTENSIONS.items()} == {
        "audio": [(1, extensions.MID), (2, extensions.AUDIO_LEVEL)],
        "video": [(1, extensions.MID), (3, extensions.ABS_SEND_TIME)]}
    common = inspect.getsource(aiortc.rtcpeerconnection.find_common_header_extensions)
    assert "common.append(rx)" in common
    assert "await self.transport._send_rtp(packet_bytes)" in inspect.getsource(RTCRtpSender)


# --- receive demux (demux_receive, consent_check, renominate) ---------------------------------------

def test_aioice_datagram_path_the_demux_sits_in_front_of() -> None:
    """The demux replaces ``StunProtocol.datagram_received`` on each socket of the connection and
    hands everything but nominated-pair SRTP to the original, which must still parse STUN and pass
    the rest on as data; it reads the nomination per datagram."""
    received = inspect.getsource(aioice.ice.StunProtocol.datagram_received)
    assert "message = stun.parse_message(data)" in received
    assert "except ValueError:" in received and "self.receiver.data_received(data, self.local_candidate.component)" \
        in received
    init = inspect.getsource(aioice.Connection.__init__)
    assert "self._protocols: list[StunProtocol] = []" in init and "self._nominated: dict[int, CandidatePair] = {}" \
        in init
    assert "self._nominated[pair.component] = pair" in inspect.getsource(aioice.Connection.check_complete)
    pair_names = dir(aioice.ice.CandidatePair)
    for name in ("remote_addr", "local_candidate", "component"):
        assert name in pair_names, name
    pair_init = inspect.getsource(aioice.ice.CandidatePair.__init__)
    assert "self.protocol = protocol" in pair_init and "self.remote_candidate = remote_candidate" in pair_init
    assert "self._rx_srtp = Session(rx_policy)" in inspect.getsource(RTCDtlsTransport._setup_srtp)


def test_demux_classifies_as_aiortc_does() -> None:
    """RFC 7983 by the first byte (128-191 SRTP/SRTCP), RTCP by packet type 192-208 (aiortc's
    ``is_rtcp``): the demux must send each datagram where aiortc's DTLS task would have."""
    recv = inspect.getsource(RTCDtlsTransport._recv_next)
    assert "if first_byte > 19 and first_byte < 64:" in recv
    assert "elif first_byte > 127 and first_byte < 192 and self._rx_srtp:" in recv
    assert "if is_rtcp(data):" in recv
    assert inspect.getsource(aiortc.rtp.is_rtcp).strip().endswith(
        "return len(msg) >= 2 and msg[1] >= 192 and msg[1] <= 208")


def test_consent_helpers_internals() -> None:
    consent = inspect.getsource(aioice.Connection.query_consent)
    assert "request = self.build_request(pair, nominate=False)" in consent
    assert 'integrity_key=self.remote_password.encode("utf8")' in consent
    assert "def request(" in inspect.getsource(aioice.ice.StunProtocol)
    assert aiortc_private.signatures()["StunProtocol.datagram_received"] == \
        EXPECTED_SIGNATURES["StunProtocol.datagram_received"]


def test_a_counting_viewer_sends_the_remb_aiortcs_estimator_computes_from_the_clear_header() -> None:
    """``SocketRemb`` (the bench's counting viewers): aiortc's estimator fed from ``abs-send-time`` read
    in the clear SRTP header; its REMB goes out through the DTLS transport's ``_send_rtp`` (SRTCP)."""
    import asyncio
    from types import SimpleNamespace

    from sfu import rtcp
    from sfu.extensions import abs_send_time, element, header

    async def run() -> list[bytes]:
        sent: list[bytes] = []

        async def send_rtp(data: bytes) -> None:
            sent.append(data)

        dtls = SimpleNamespace(_send_rtp=send_rtp)
        sdp = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 97\r\na=extmap:3 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n"
        pc = SimpleNamespace(localDescription=SimpleNamespace(sdp=sdp),
                             getTransceivers=lambda: [SimpleNamespace(receiver=SimpleNamespace(transport=dtls))])
        remb = aiortc_private.SocketRemb.of(pc)  # type: ignore[arg-type]
        assert remb is not None and remb.ext_id == 3
        for i in range(500):  # 5 s at 100 packets/s of 1000 bytes (+ a 10-byte tag): 800 kbit/s
            at = i * 0.01
            remb.on_rtp(header(97, i, i * 900, 1234, element(3, abs_send_time(at))) + bytes(1010), int(at * 1000))
        await asyncio.sleep(0)
        return sent

    sent = asyncio.run(run())
    assert sent
    for data in sent:
        ((pt, fmt, body),) = rtcp.split(data)
        assert (pt, fmt) == (rtcp.PSFB, rtcp.FMT_REMB)
        bitrate = rtcp.remb_bitrate(body)
        assert bitrate is not None and 700_000 <= bitrate <= 1_300_000
