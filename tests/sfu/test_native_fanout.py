"""The native fan-out sends what the Python fan-out sends, byte for byte, and one viewer's trouble
stays its own.

Pure: a real Producer and real consumers of both kinds, real libsrtp sessions (pylibsrtp for the
Python path and for decrypting, libsrtp2 in the extension), real UDP sockets on 127.0.0.1; no peers.
The extension must be built (``make test`` builds it): these tests fail, never skip, without it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pylibsrtp
import pytest

import sfu.consumer
import sfu.extensions
import sfu.producer
from sfu import aiortc_private, native
from sfu.consumer import Consumer
from sfu.extensions import ABS_SEND_TIME, MID, PLAYOUT_DELAY, TRANSPORT_CC, VIDEO_ORIENTATION, Inbound, Outbound
from sfu.fanout import NativeConsumer, NativeWire, Plane
from sfu.producer import Codec, KeyframeRequester, Producer
from sfu.twcc import Departures, Feedback
from sfu.types import FanoutConfig

FANOUT_PATHS = ("native",)
"""The native plane itself (each test drives both paths where it compares them): native only (tests/conftest.py)."""

PROFILES = {  # libsrtp profile number: master key + salt length
    pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80: 30,
    pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM: 28,
    pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM: 44,
}
MTU_PAYLOAD = 1400
"""Every payload size from 1 to this (GStreamer's MTU; the header and SRTP trailer come on top)."""
SENT = MTU_PAYLOAD + 1
"""Packets forwarded: the keyframe start, then one per size."""
VP8 = Codec("video", "video/VP8", 90000, 96)
FULL_IDS = {MID: 1, ABS_SEND_TIME: 3, TRANSPORT_CC: 4, PLAYOUT_DELAY: 6, VIDEO_ORIENTATION: 13}


def loaded() -> tuple[Any, Any]:
    got = native.load()
    assert not isinstance(got, str), got  # fail, never skip: make test builds the extension
    return got


class Clock:
    """time.monotonic for sfu.producer and sfu.consumer: the same times in both runs."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        self.now += 0.0005
        return self.now


class PylibsrtpWire:
    """The Python path's wire (aiortc_private.WireSender's face) over a pylibsrtp session: datagrams kept."""

    def __init__(self, profile: int, key: bytes) -> None:
        policy = pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile)
        policy.allow_repeat_tx = True
        policy.window_size = 1024
        self.session = pylibsrtp.Session(policy)
        aiortc_private.grow_srtp_buffer(self.session, 4096)
        self.protect = self.session.protect
        self.addr = ("127.0.0.1", 9)
        self.sent: list[bytes] = []

    def sendto(self, data: bytes, addr: Any) -> None:
        self.sent.append(data)

    def send_rtp(self, packet: bytes) -> bool:
        self.sent.append(self.session.protect(packet))
        return True

    def send_rtcp(self, packet: bytes) -> None:
        raise AssertionError("no RTCP here")


def receiver() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    s.setblocking(False)
    return s


def drain(s: socket.socket) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(s.recv(65536))
        except BlockingIOError:
            return out


class FakeDtls:
    """Stands for the DTLS transport a NativeWire follows: the nominated pair is given directly."""


def native_wire(plane: Plane, profile: int, key: bytes, sender: socket.socket, to: tuple[str, int],
                monkeypatch: pytest.MonkeyPatch) -> NativeWire:
    monkeypatch.setattr(aiortc_private, "srtp_tx_keying", lambda dtls: (profile, key))
    targets = {}

    def nominated(dtls: Any) -> Any:
        return targets.get(id(dtls))

    monkeypatch.setattr(aiortc_private, "nominated_target", nominated)
    dtls = FakeDtls()
    targets[id(dtls)] = (sender.fileno(), *to)
    wire = plane.wire(dtls, PylibsrtpWire(profile, key))  # type: ignore[arg-type]
    assert wire is not None
    return wire


def viewer_session(profile: int, key: bytes) -> pylibsrtp.Session:
    policy = pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND, srtp_profile=profile)
    policy.window_size = 1024
    session = pylibsrtp.Session(policy)
    aiortc_private.grow_srtp_buffer(session, 4096)
    return session


def unprotect_all(profile: int, key: bytes, datagrams: list[bytes]) -> list[bytes]:
    """What the viewer decrypts. A retransmission without RTX repeats an index its session already
    took (its replay check refuses it, as a viewer's would): a session of its own reads it (the
    consumers' numbers do not wrap before the retransmissions, so its first index guess is right)."""
    session = viewer_session(profile, key)
    out = []
    for d in datagrams:
        try:
            out.append(session.unprotect(d))
        except pylibsrtp.Error:
            out.append(viewer_session(profile, key).unprotect(d))
    return out


def publisher_packets() -> Iterator[bytes]:
    """A VP8 keyframe start (2 bytes), then every payload size up to the MTU, with passthrough extensions that
    come and go (playout-delay on some, video-orientation on others, none on the rest)."""
    seq, ts = 65000, 4_294_000_000  # both wrap on the way
    for size in [2, *range(1, MTU_PAYLOAD + 1)]:
        payload = bytes([0x10, 0x00]) + bytes((size * 7 + i) & 0xFF for i in range(max(0, size - 2)))
        payload = payload[:size]
        elems = b""
        if size % 3 == 0:
            elems += bytes([(2 << 4) | 2]) + bytes([size & 0xFF, 1, 2])  # playout-delay, 3 bytes (id 2)
        if size % 5 == 0:
            elems += bytes([(7 << 4) | 0, size & 0x03])  # video-orientation, 1 byte (id 7)
        marker = 0x80 if size % 4 == 0 else 0
        if elems:
            elems += bytes(-len(elems) % 4)
            head = bytes([0x90, marker | 96]) + seq.to_bytes(2, "big") + ts.to_bytes(4, "big") + b"\x11\x22\x33\x44"
            data = head + b"\xbe\xde" + (len(elems) // 4).to_bytes(2, "big") + elems + payload
        else:
            data = bytes([0x80, marker | 96]) + seq.to_bytes(2, "big") + ts.to_bytes(4, "big") + b"\x11\x22\x33\x44" \
                + payload
        yield data
        seq = (seq + 1) & 0xFFFF
        ts = (ts + 3000 * (size % 2)) & 0xFFFFFFFF


def new_producer(clock: Clock) -> Producer:
    requester = KeyframeRequester(lambda: None, 0.5, lambda delay, fn: None)  # type: ignore[arg-type,return-value]
    p = Producer("p1", "pub", VP8, 0x11223344, requester)  # type: ignore[arg-type]
    p.ext_in = Inbound.of({PLAYOUT_DELAY: 2, VIDEO_ORIENTATION: 7})
    return p


OUTS = {"bare": Outbound.of({}, None), "full": Outbound.of(FULL_IDS, "1"),
        "mid-only": Outbound.of({MID: 9}, "video0")}


def run(path: str, profile: int, key: bytes, monkeypatch: pytest.MonkeyPatch,
        srtp: str = "auto") -> dict[str, list[bytes]]:
    """Every publisher packet through a producer to one consumer per kind of extension set, then a NACK
    answered with RTX for some and without for others: the decrypted packets each viewer got. ``srtp``:
    the native plane's SRTP (``auto``: pylibsrtp's libsrtp; ``system``: the system's libsrtp2)."""
    clock = Clock()
    monkeypatch.setattr(sfu.producer, "time", clock)
    monkeypatch.setattr(sfu.consumer, "time", clock)
    monkeypatch.setattr(sfu.extensions, "time", clock)  # the retransmission header's abs-send-time
    producer = new_producer(clock)
    got: dict[str, list[bytes]] = {}
    consumers: dict[str, Consumer] = {}
    sockets: dict[str, tuple[socket.socket, socket.socket]] = {}
    plane = Plane(*loaded(), FanoutConfig(mode="native", batch=16, srtp=srtp)) if path == "native" else None
    producer.plane = plane
    try:
        for i, (name, out) in enumerate(OUTS.items()):
            rtx_pt = 97 if i != 1 else None
            if plane is None:
                wire: Any = PylibsrtpWire(profile, key)
                c: Consumer = Consumer(name, producer, wire, 0xA0 + i, 100, 0xB0 + i, rtx_pt, False, out, Departures())
            else:
                rx = receiver()
                tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                tx.setblocking(False)
                sockets[name] = (rx, tx)
                w = native_wire(plane, profile, key, tx, rx.getsockname(), monkeypatch)
                assert (w.sender is not None) == (srtp == "auto")  # whose libsrtp encrypts
                c = NativeConsumer(name, producer, w, 0xA0 + i, 100, 0xB0 + i, rtx_pt, False, out, w.departures)
            c.seq_off, c.ts_off, c.rtx_seq = 1000 * (i + 1), 7_000_000 * (i + 1), 65530
            consumers[name] = c
            got[name] = []
            producer.add_consumer(c)
        for data in publisher_packets():
            producer.on_rtp(data)
            for name, (rx, _) in sockets.items():
                got[name] += drain(rx)
        for c in consumers.values():
            c.on_nack([(s + c.seq_off) & 0xFFFF for s in (65000, 65535, 0, 300, 500, 864)])  # 65000: gone
        for name, (rx, _) in sockets.items():
            got[name] += drain(rx)
        for name, c in consumers.items():
            if plane is None:
                got[name] = list(c.wire.sent)  # type: ignore[attr-defined]
            assert c.packets == SENT
        return got
    finally:
        for c in consumers.values():
            c.close()
        if plane is not None:
            plane.close()
        for rx, tx in sockets.values():
            rx.close()
            tx.close()


@pytest.mark.parametrize("srtp", ["auto", "system"])
@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_native_packets_equal_python_packets_byte_for_byte(profile: int, srtp: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    key = os.urandom(PROFILES[profile])
    python_sent = run("python", profile, key, monkeypatch)
    native_sent = run("native", profile, key, monkeypatch, srtp)
    for name in OUTS:  # same key, SSRC and index: the same ciphertext and tag
        assert native_sent[name] == python_sent[name], name
    python = {name: unprotect_all(profile, key, sent) for name, sent in python_sent.items()}
    native_ = {name: unprotect_all(profile, key, sent) for name, sent in native_sent.items()}
    for name in OUTS:
        assert len(python[name]) == SENT + 5, name
        assert len(native_[name]) == len(python[name]), name
        for i, (a, b) in enumerate(zip(python[name], native_[name], strict=True)):
            assert a == b, f"{name} packet {i}: python {a[:24].hex()} native {b[:24].hex()}"
    # the extension ids and RTX really were exercised
    full = python["full"]
    assert all(p[0] == 0x90 for p in full) and all(p[0] == 0x80 for p in python["bare"][:SENT])
    assert {p[1] & 0x7F for p in python["bare"][SENT:]} == {97}
    assert {p[1] & 0x7F for p in full[SENT:]} == {100}


def test_native_departures_answer_like_python_ones() -> None:
    ffi, lib = loaded()
    plane = Plane(ffi, lib, FanoutConfig(mode="native"))
    t = lib.fo_transport_new(1, bytes(30), 30)

    class W:
        pass

    w = W()
    w.plane, w.t, w.closed = plane, t, False  # type: ignore[attr-defined]
    from sfu.fanout import NativeDepartures

    mine, theirs = NativeDepartures(w), Departures()  # type: ignore[arg-type]
    for i in range(70000):  # wraps the 16-bit numbers
        assert mine.next(i * 0.001, 100 + i % 50) == theirs.next(i * 0.001, 100 + i % 50)
    fb = Feedback(1, 2, 69990 & 0xFFFF, 0, tuple(((69990 + k) & 0xFFFF, None if k % 3 else 5_000_000 + k)
                                                for k in range(10)))
    assert mine.resolve(fb) == theirs.resolve(fb)
    for seq in (69990 & 0xFFFF, 69999 & 0xFFFF, 12):  # what a probe cluster is judged by (sfu/probe.py)
        assert mine.sent_at(seq) == theirs.sent_at(seq)
    assert mine.seq == theirs.seq
    lib.fo_transport_free(plane._p, t)
    plane.close()


def test_a_session_pylibsrtp_refuses_falls_back_to_the_system_libsrtp2(monkeypatch: pytest.MonkeyPatch) -> None:
    """``srtp`` auto: when pylibsrtp cannot make the session, the plane makes its own (libsrtp2) and the
    viewer still decrypts what it sends; the wire frees the borrowed session only after its transport."""
    profile = pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM
    key = os.urandom(PROFILES[profile])
    plane = Plane(*loaded(), FanoutConfig(mode="native", srtp="auto"))
    rx, tx = receiver(), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    packet = bytes([0x80, 96, 0, 5, 0, 0, 0, 9, 0, 0, 0, 7]) + os.urandom(900)
    try:
        borrowed = native_wire(plane, profile, key, tx, rx.getsockname(), monkeypatch)
        assert borrowed.sender is not None
        monkeypatch.setattr(aiortc_private, "bundled_srtp_sender", lambda profile, key: None)
        own = native_wire(plane, profile, key, tx, rx.getsockname(), monkeypatch)
        assert own.sender is None
        viewer = viewer_session(profile, key)
        for w, ssrc in ((borrowed, 1), (own, 2)):
            w.send_rtp(packet[:8] + ssrc.to_bytes(4, "big") + packet[12:])
        got = [viewer.unprotect(d) for d in drain(rx)]
        assert got == [packet[:8] + ssrc.to_bytes(4, "big") + packet[12:] for ssrc in (1, 2)]
        borrowed.close()
        assert borrowed.sender is None and borrowed.t == plane.ffi.NULL
    finally:
        plane.close()
        rx.close()
        tx.close()


# --- without the extension: the Python path, chosen at start and said once -------------------------

def test_auto_without_the_extension_is_the_python_path_said_once(monkeypatch: pytest.MonkeyPatch,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    from sfu import fanout
    from sfu.events import MemoryEventSink
    from sfu.worker import Worker

    monkeypatch.setattr(native, "load", lambda: "sfu.native._fanout is not built (pretend)")
    caplog.set_level("INFO", logger="sfu.fanout")
    worker = Worker(addresses=("127.0.0.1",), events=MemoryEventSink(), fanout=FanoutConfig(mode="auto"))
    assert worker.plane is None
    said = [r.getMessage() for r in caplog.records]
    assert said == ["sfu fan-out: python (sfu.native._fanout is not built (pretend))"]
    with pytest.raises(fanout.FanoutUnavailable, match="pretend"):
        Worker(addresses=("127.0.0.1",), events=MemoryEventSink(), fanout=FanoutConfig(mode="native"))


def test_the_build_never_fails_when_it_cannot_compile(tmp_path: Any) -> None:
    """No compiler (CC is /bin/false): the build says why and exits 0; the extension in place stays."""
    import subprocess
    import sys

    before = sorted(p.name for p in (Path(native.__file__).parent).glob("_fanout.*.so"))
    env = {**os.environ, "CC": "/bin/false", "LDSHARED": "/bin/false"}
    done = subprocess.run([sys.executable, "-m", "sfu.native.build"], env=env, capture_output=True, text=True,
                          check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "build failed" in done.stdout and "Python fan-out" in done.stdout
    strict = subprocess.run([sys.executable, "-m", "sfu.native.build", "--strict"], env=env, capture_output=True,
                            text=True, check=False, timeout=120)
    assert strict.returncode == 1
    assert sorted(p.name for p in (Path(native.__file__).parent).glob("_fanout.*.so")) == before


def test_settings_take_the_fanout_choice() -> None:
    from switchboard.errors import SettingsError
    from switchboard.settings import load_settings

    settings = load_settings(None, {"SWITCHBOARD_SFU_FANOUT": "python", "SWITCHBOARD_SFU_FANOUT_BATCH": "32",
                                    "SWITCHBOARD_SFU_FANOUT_FLUSH_MS": "2", "SWITCHBOARD_SFU_FANOUT_SRTP": "system"})
    assert (settings.sfu.fanout, settings.sfu.fanout_batch, settings.sfu.fanout_flush_ms,
            settings.sfu.fanout_srtp) == ("python", 32, 2.0, "system")
    assert load_settings(None, {}).sfu.fanout_srtp == "auto"
    for key, value in (("SWITCHBOARD_SFU_FANOUT", "c++"), ("SWITCHBOARD_SFU_FANOUT_BATCH", "0"),
                       ("SWITCHBOARD_SFU_FANOUT_FLUSH_MS", "-1"), ("SWITCHBOARD_SFU_FANOUT_SRTP", "nss")):
        with pytest.raises(SettingsError):
            load_settings(None, {key: value})
