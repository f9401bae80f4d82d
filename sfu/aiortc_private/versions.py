"""The exact aiortc / aioice / pylibsrtp versions this package was written against, and the private
signatures its other modules rely on.

Touches no internals itself: it reads ``__version__`` and the ``inspect.signature`` of the private
methods the other modules replace or call (``RTCDtlsTransport._handle_rtp_data``, ``_handle_rtcp_data``,
``_set_role``, ``_send_rtp``; ``RTCCertificate._create_ssl_context``; aioice's
``Connection.get_component_candidates``, ``Connection.data_received``, ``StunProtocol.datagram_received``).
``tests/sfu/test_aiortc_private.py`` compares both with what they were, so an upgrade fails loudly.
"""

from __future__ import annotations

import inspect

import aioice
import aiortc
import pylibsrtp
from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.rtcdtlstransport import RTCCertificate, RTCDtlsTransport

PINNED = {"aiortc": "1.16.0", "aioice": "0.13.0", "pylibsrtp": "1.0.0"}
"""The exact versions whose internals this package was written against."""


def installed_versions() -> dict[str, str]:
    return {"aiortc": aiortc.__version__, "aioice": aioice.__version__, "pylibsrtp": pylibsrtp.__version__}


def check_versions() -> None:
    """Raise RuntimeError when the installed versions differ from :data:`PINNED`."""
    found = installed_versions()
    if found != PINNED:
        raise RuntimeError(f"sfu.aiortc_private was written for {PINNED}, found {found}")


def signatures() -> dict[str, str]:
    """The private signatures this package relies on (the upgrade test compares them)."""
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
