"""Negotiation helpers of a transport, pure functions of SDP text and aiortc parameters, and the
worker's one DTLS certificate (split from ``sfu.transport``)."""

from __future__ import annotations

import datetime

from aiortc import RTCRtpSender
from aiortc.rtcrtpparameters import RTCRtpCodecCapability, RTCRtpReceiveParameters, RTCRtpSendParameters

from sfu import aiortc_private as private
from sfu.errors import NegotiationError
from sfu.producer import Codec


def announce(sdp: str, addresses: tuple[str, ...], announced: str) -> str:
    """Replace our listening addresses by the announced one in candidate lines (NAT, containers)."""
    if not announced:
        return sdp
    out = []
    for line in sdp.split("\r\n"):
        if line.startswith("a=candidate:"):
            parts = line.split(" ")
            if len(parts) > 5 and parts[4] in addresses:
                parts[4] = announced
                line = " ".join(parts)
        out.append(line)
    return "\r\n".join(out)


def offered_setup(sdp: str) -> str | None:
    """The first ``a=setup`` value of an SDP (``actpass``, ``active``, ``passive``), if any."""
    for line in sdp.splitlines():
        if line.startswith("a=setup:"):
            return line.removeprefix("a=setup:").strip()
    return None


class DtlsCertificate:
    """A worker's one DTLS key and certificate, shared by all its peer connections (like mediasoup).

    aiortc would generate an EC key and a certificate per RTCPeerConnection, and an SSL context per
    DTLS transport, on the media loop. aiortc's certificates last 30 days: a new one is made a day
    before that (connections already up keep theirs).
    """

    RENEW_BEFORE = datetime.timedelta(days=1)

    def __init__(self) -> None:
        self._current: private.SharedCertificate | None = None

    def current(self) -> private.SharedCertificate:
        now = datetime.datetime.now(tz=datetime.UTC)
        if self._current is None or self._current.expires - now < self.RENEW_BEFORE:
            self._current = private.SharedCertificate.generateCertificate()
        return self._current

    def fingerprint(self) -> str:
        """The sha-256 fingerprint peers see in our SDP."""
        return next(f.value for f in self.current().getFingerprints() if f.algorithm == "sha-256")


def codec_of(parameters: RTCRtpReceiveParameters | RTCRtpSendParameters, kind: str) -> tuple[Codec, int | None]:
    """The primary codec of negotiated parameters, and its RTX payload type if any."""
    main = next((c for c in parameters.codecs if not c.mimeType.lower().endswith("/rtx")), None)
    if main is None or main.payloadType is None:
        raise NegotiationError("no usable codec negotiated")
    rtx = next((c.payloadType for c in parameters.codecs if c.mimeType.lower().endswith("/rtx")
                and str(c.parameters.get("apt")) == str(main.payloadType)), None)
    codec = Codec(kind=kind, mime_type=main.mimeType, clock_rate=main.clockRate, payload_type=main.payloadType,
                  channels=main.channels, parameters=tuple(sorted((k, str(v)) for k, v in main.parameters.items())))
    return codec, rtx


def preferences_for(codec: Codec) -> list[RTCRtpCodecCapability]:
    """aiortc codec preferences that offer exactly the producer's codec (plus RTX for video)."""
    caps = RTCRtpSender.getCapabilities(codec.kind).codecs
    params = dict(codec.parameters)
    chosen = []
    for cap in caps:
        if cap.mimeType.lower() != codec.mime_type.lower() or cap.clockRate != codec.clock_rate:
            continue
        if codec.mime_type.lower() == "video/h264" and str(cap.parameters.get("packetization-mode", "0")) != \
                params.get("packetization-mode", "0"):
            continue
        chosen.append(cap)
        break
    if not chosen:
        raise NegotiationError(f"cannot forward {codec.mime_type} to this subscriber")
    if codec.kind == "video":
        chosen += [c for c in caps if c.mimeType.lower() == "video/rtx"]
    return chosen


def ice_ufrag(sdp: str) -> str | None:
    """The first ``a=ice-ufrag`` of an SDP: a new one on a known peer means a new peer connection."""
    for line in sdp.splitlines():
        if line.startswith("a=ice-ufrag:"):
            return line.removeprefix("a=ice-ufrag:").strip()
    return None
