"""What the native fan-out (``sfu/fanout.py``, ``sfu/native``) takes from a viewer transport: its
outgoing SRTP keys and the socket and address of its nominated ICE pair.

Private aiortc surface: ``RTCDtlsTransport._ssl`` (the pyOpenSSL connection: selected SRTP profile,
keying material export), ``_tx_srtp``, ``_role``, and ``aiortc.rtcdtlstransport.SRTP_PROFILES`` with
each profile's ``openssl_profile``, ``libsrtp_profile``, key and salt lengths and ``get_key_and_salt``
(the derivation of ``_setup_srtp``). Private aioice surface: ``Connection._nominated``, the pair's
``protocol.transport`` and ``remote_addr``. ``tests/sfu/test_native_keys.py`` checks both against a live
connection.
"""

from __future__ import annotations

from aiortc import rtcdtlstransport as _rtcdtlstransport
from aiortc.rtcdtlstransport import RTCDtlsTransport

from sfu.aiortc_private.ice import ice_connection


def srtp_tx_keying(dtls: RTCDtlsTransport) -> tuple[int, bytes] | None:
    """(libsrtp2 profile number, master key + salt) of a connected DTLS transport's outgoing SRTP, as
    aiortc derives them in ``_setup_srtp`` (RFC 5764: the exporter's client key first; the server
    sends with the second). None when there is no handshake or a profile aiortc does not list.

    The native fan-out builds its own libsrtp2 session from these (pylibsrtp's sessions belong to
    its statically linked libsrtp and are never shared); ``test_native_keys`` checks that both
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
