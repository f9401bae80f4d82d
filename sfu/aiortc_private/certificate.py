"""The DTLS certificate a peer connection is built around, and the DTLS role it takes.

Private aiortc surface: ``RTCCertificate._create_ssl_context`` (overridden to build the SSL context
once per SRTP profile list); the module-level name ``aiortc.rtcpeerconnection.RTCCertificate``
(swapped during one ``RTCPeerConnection.__init__``, which calls its ``generateCertificate()``);
``RTCPeerConnection.__certificates`` (read back); ``RTCDtlsTransport._role`` and ``_set_role``
(the DTLS server role when an offer says ``actpass``).
"""

from __future__ import annotations

from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc import rtcpeerconnection as _rtcpeerconnection
from aiortc.rtcdtlstransport import RTCCertificate


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
