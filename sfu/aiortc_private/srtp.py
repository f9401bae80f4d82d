"""pylibsrtp sessions that take any packet a UDP datagram carries.

Private pylibsrtp surface: ``Session._cdata`` / ``_buffer``, the session's work buffer (1500 bytes,
of which it keeps 144 for the trailer: ``protect`` refuses RTP above 1356 bytes, with a ValueError),
replaced by a bigger one from pylibsrtp's own ``_binding.ffi`` when a packet needs it, up to the
largest UDP datagram; ``Session._srtp`` (the ``srtp_t *`` it made) and ``_binding.lib.srtp_protect``,
whose addresses the native fan-out takes (:func:`bundled_srtp_sender`). Private aiortc surface:
``RTCDtlsTransport._rx_srtp``, whose ``unprotect`` / ``unprotect_rtcp`` are replaced on the instance
(aiortc's receive loop catches only ``pylibsrtp.Error``).
"""

from __future__ import annotations

from collections.abc import Callable

import pylibsrtp
from aiortc.rtcdtlstransport import RTCDtlsTransport
from pylibsrtp._binding import ffi as _srtp_ffi  # type: ignore[import-not-found]
from pylibsrtp._binding import lib as _srtp_lib

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


class BundledSender:
    """An outgoing SRTP session made by pylibsrtp's own libsrtp 2 (statically linked, on OpenSSL), for
    the native fan-out to encrypt with through that library's ``srtp_protect``: ``session`` is the
    ``srtp_t`` and ``protect`` the function, as addresses. A fresh session of its own, never aiortc's
    (``_tx_srtp`` keeps RTCP); it lives as long as this object (pylibsrtp frees it when collected)."""

    def __init__(self, profile: int, key: bytes) -> None:
        policy = pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile)
        policy.window_size = 1024  # as fo_transport_new sets Debian's: the same replay rules on send
        policy.allow_repeat_tx = True
        self._session = pylibsrtp.Session(policy)
        self.session = int(_srtp_ffi.cast("uintptr_t", self._session._srtp[0]))
        self.protect = int(_srtp_ffi.cast("uintptr_t", _srtp_ffi.addressof(_srtp_lib, "srtp_protect")))


def bundled_srtp_sender(profile: int, key: bytes) -> BundledSender | None:
    """A :class:`BundledSender` for a transport's outgoing keys (libsrtp profile number, master key +
    salt, as :func:`~sfu.aiortc_private.native_keys.srtp_tx_keying` gives them); None when pylibsrtp
    refuses them."""
    try:
        return BundledSender(profile, key)
    except (pylibsrtp.Error, ValueError, TypeError):
        return None


def srtp_error() -> type[Exception]:
    return pylibsrtp.Error
