"""DTLS through real aiortc peers: one certificate per worker, and the server role for ``actpass`` offers."""

from __future__ import annotations

import datetime

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcdtlstransport import RTCCertificate
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

from sfu import aiortc_private
from sfu.events import MemoryEventSink
from sfu.types import PeerId
from sfu.worker import Worker
from switchboard.ids import RoomId, UserId
from tests.sfu.peers import MovingVideo, start_publisher, start_viewer
from tests.sfu.test_forwarding import wait_for

ROOM = RoomId("dtls")


def fingerprints(sdp: str) -> set[str]:
    return {line.split(" ", 1)[1].strip() for line in sdp.splitlines() if line.startswith("a=fingerprint:sha-256")}


def setup_of(sdp: str) -> set[str]:
    return {line.removeprefix("a=setup:").strip() for line in sdp.splitlines() if line.startswith("a=setup:")}


def rsa_certificate() -> RTCCertificate:
    """What GStreamer (and older browsers) use: an RSA 2048 key, self-signed."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "rsa-peer")])
    now = datetime.datetime.now(tz=datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=7)).sign(key, hashes.SHA256()))
    return RTCCertificate(key=key, cert=cert)  # type: ignore[arg-type]


async def test_every_peer_of_a_worker_presents_the_workers_certificate(worker: Worker) -> None:
    await worker.open_room(RoomId("other-room"))
    pub_a = await start_publisher(worker, ROOM, "a", audio=False)
    pub_b = await start_publisher(worker, RoomId("other-room"), "b", audio=False)
    await wait_for(lambda: len(worker.routers[ROOM].producers) == 1, 10)
    viewer = await start_viewer(worker, ROOM, "v")
    try:
        assert pub_a.remoteDescription is not None and pub_b.remoteDescription is not None
        assert viewer.pc.remoteDescription is not None
        seen = (fingerprints(pub_a.remoteDescription.sdp) | fingerprints(pub_b.remoteDescription.sdp)
                | fingerprints(viewer.pc.remoteDescription.sdp))
        assert seen == {worker.certificate.fingerprint()}
        await viewer.wait_frames(5, timeout=20)  # and DTLS completes with it, both ways
    finally:
        await viewer.close()
        await pub_a.close()
        await pub_b.close()


async def test_two_workers_have_different_certificates() -> None:
    a = Worker(addresses=("127.0.0.1",), events=MemoryEventSink())
    b = Worker(addresses=("127.0.0.1",), events=MemoryEventSink())
    assert a.certificate.fingerprint() != b.certificate.fingerprint()


async def test_an_actpass_offer_is_answered_passive_and_other_setups_are_honoured(worker: Worker) -> None:
    for offered, answered in (("actpass", "passive"), ("active", "passive"), ("passive", "active")):
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        try:
            pc.addTrack(MovingVideo(64, 48))
            await pc.setLocalDescription(await pc.createOffer())
            offer = pc.localDescription.sdp.replace("a=setup:actpass", f"a=setup:{offered}")
            answer = await worker.publish(ROOM, PeerId(f"p-{offered}"), UserId(f"u-{offered}"), offer)
            assert setup_of(answer) == {answered}
        finally:
            await pc.close()
            await worker.close_peer(ROOM, PeerId(f"p-{offered}"))


async def test_a_publisher_with_an_rsa_certificate_reaches_viewers(worker: Worker) -> None:
    """aiortc as DTLS client offers only ECDHE-ECDSA suites: had the node answered ``active``, this
    publisher (the DTLS server, RSA key) would have had no suite in common and never connected."""
    pc = aiortc_private.peer_connection(RTCConfiguration(iceServers=[]), rsa_certificate())
    pc.addTrack(MovingVideo(320, 240))
    await pc.setLocalDescription(await pc.createOffer())
    assert setup_of(pc.localDescription.sdp) == {"actpass"}
    answer = await worker.publish(ROOM, PeerId("rsa"), UserId("user-rsa"), pc.localDescription.sdp)
    assert setup_of(answer) == {"passive"}
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    viewer = None
    try:
        await wait_for(lambda: pc.connectionState in ("connected", "failed"), 20)
        assert pc.connectionState == "connected"
        await wait_for(lambda: len(worker.routers[ROOM].producers) == 1, 10)
        viewer = await start_viewer(worker, ROOM, "v")
        await viewer.wait_frames(10, timeout=20)
        assert viewer.sizes == {(320, 240)}
    finally:
        if viewer is not None:
            await viewer.close()
        await pc.close()
