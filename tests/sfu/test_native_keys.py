"""Tripwire for the native fan-out's touch of aiortc: the outgoing SRTP keys exported from a real DTLS
handshake are the ones aiortc's own session uses, and the socket and address are the nominated pair's.
Fails loudly when aiortc changes how it derives them (or when the extension is not built)."""

from __future__ import annotations

import inspect

import pylibsrtp
import pytest
from aiortc.rtcdtlstransport import RTCDtlsTransport

from sfu import aiortc_private
from sfu.fanout import NativeConsumer
from sfu.worker import Worker
from switchboard.ids import RoomId
from tests.sfu.peers import start_publisher, start_viewer
from tests.sfu.test_forwarding import wait_for
from tests.sfu.test_native_fanout import loaded

FANOUT_PATHS = ("native",)
"""The keys the native plane exports from aiortc: native only (tests/conftest.py)."""

ROOM = RoomId("keys")


def test_aiortc_derives_srtp_keys_as_we_export_them() -> None:
    source = inspect.getsource(RTCDtlsTransport._setup_srtp)
    for line in ('openssl_profile = self._ssl.get_selected_srtp_profile()',
                 'b"EXTRACTOR-dtls_srtp"', '2 * (srtp_profile.key_length + srtp_profile.salt_length)',
                 'if self._role == "server":', 'srtp_tx_key = srtp_profile.get_key_and_salt(view, 1)',
                 'srtp_tx_key = srtp_profile.get_key_and_salt(view, 0)', "ssrc_type=Policy.SSRC_ANY_OUTBOUND"):
        assert line in source, line


@pytest.mark.parametrize("sfu_fanout", ["native"], indirect=True)  # whatever SWITCHBOARD_SFU_FANOUT says
async def test_native_session_encrypts_like_aiortcs(worker: Worker) -> None:
    loaded()
    assert worker.plane is not None, "the worker's fan-out is not native"
    pub = await start_publisher(worker, ROOM, "pub")
    try:
        await wait_for(lambda: len(worker.routers[ROOM].producers) == 2, 10)
        viewer = await start_viewer(worker, ROOM, "v")
        try:
            await viewer.wait_frames(5, timeout=20)
            t = worker.routers[ROOM].transports["v"]  # type: ignore[index]
            assert t.native is not None
            assert all(isinstance(c, NativeConsumer) for c in t.consumers.values())
            dtls = t.pc.getTransceivers()[0].sender.transport
            keying = aiortc_private.srtp_tx_keying(dtls)
            assert keying is not None
            profile, key = keying
            ours = pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
                                                      srtp_profile=profile))
            packet = bytes([0x80, 96, 0, 7, 0, 0, 0, 9, 0x5E, 0xED, 0x5E, 0xED]) + b"payload" * 9
            assert ours.protect(packet) == dtls._tx_srtp.protect(packet)  # an SSRC neither session used
            target = aiortc_private.nominated_target(dtls)
            pair = aiortc_private.ice_connection(dtls)._nominated[1]
            assert target == (pair.protocol.transport.get_extra_info("socket").fileno(), *pair.remote_addr[:2])
            assert t.native.sent_packets > 0 and t.native.send_errors == 0
        finally:
            await viewer.close()
    finally:
        await pub.close()
