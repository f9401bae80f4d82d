"""The native fan-out filters VP8 temporal layers exactly as the Python path does (differential).

Random VP8 streams on two simulcast layers (hypothesis: TIDs 0-3 with random ``Y`` bits, keyframes,
7- and 15-bit picture ids and none, with and without TL0PICIDX or ``T``, ids and sequence numbers that
wrap, truncated descriptors, publisher losses) go through real producers to consumers filtering
temporal layers, while the plan changes their targets, switches them to the other layer at its next
keyframe, pauses and resumes them, asks retransmissions (NACK, RTX or not) and probes. The same input
runs once through the Python path (Consumer + TemporalFilter, pylibsrtp) and once through the native
plane (fo_fanout steps the filter in C, libsrtp2): each viewer's datagrams must be the same bytes
(same key, SSRC and index: the same ciphertext), decrypt to the same packets, and the filters end in
the same state. A plain consumer rides along on the same fan-out.
"""

from __future__ import annotations

import itertools
import os
import socket
from dataclasses import dataclass
from typing import Any

import pylibsrtp
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import sfu.consumer
import sfu.extensions
import sfu.producer
from sfu.consumer import Consumer
from sfu.extensions import Outbound
from sfu.fanout import NativeConsumer, Plane
from sfu.fanout_temporal import NativeTemporal
from sfu.producer import KeyframeRequester, Producer
from sfu.rtp import payload_offset
from sfu.twcc import Departures
from sfu.types import FanoutConfig, PeerId
from tests.sfu.test_native_fanout import (
    FULL_IDS,
    VP8,
    Clock,
    PylibsrtpWire,
    drain,
    loaded,
    native_wire,
    receiver,
    unprotect_all,
)

FANOUT_PATHS = ("native",)
"""The native plane's C temporal filter against the Python one, in one test: native only (tests/conftest.py)."""

PROFILE = pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80
VIEWERS = {  # name: (extension ids, RTX payload type, filters temporal layers)
    "t-full-rtx": (Outbound.of(FULL_IDS, "1"), 97, True),
    "t-bare": (Outbound.of({}, None), None, True),
    "plain": (Outbound.of({}, None), 97, False),
}
STATE = ("target", "current", "dropping", "dropped", "pid_off", "tl0_off", "last_pid", "last_tl0", "rebase", "seen")


class Wire(PylibsrtpWire):
    """The Python path's wire; a packet its session refuses (an index too old after a jump back) is
    dropped, as ``aiortc_private.WireSender.send_rtp`` and the native plane drop it."""

    def send_rtp(self, packet: bytes) -> bool:
        try:
            return super().send_rtp(packet)
        except pylibsrtp.Error:
            return False


@dataclass(frozen=True)
class Picture:
    tid: int
    sync: bool
    key: bool
    packets: tuple[int, ...]
    """Payload sizes after the descriptor; a negative one: that packet is lost on the publisher's leg."""


@dataclass(frozen=True)
class LayerSpec:
    pid_bits: int  # 0: no picture id
    pid0: int
    tl0: bool
    t: bool
    tl00: int
    seq0: int


def descriptor(spec: LayerSpec, pid: int, tl0: int, pic: Picture, first: bool) -> bytes:
    x = (0x80 if spec.pid_bits else 0) | (0x40 if spec.tl0 else 0) | (0x20 if spec.t else 0)
    out = bytes([(0x80 if x else 0) | (0x10 if first else 0)])
    if x:
        out += bytes([x])
    if spec.pid_bits == 15:
        out += bytes([0x80 | (pid >> 8) & 0x7F, pid & 0xFF])
    elif spec.pid_bits == 7:
        out += bytes([pid & 0x7F])
    if spec.tl0:
        out += bytes([tl0 & 0xFF])
    if spec.t:
        out += bytes([(pic.tid << 6) | (0x20 if pic.sync else 0) | 0x05])
    return out


def rtp_packets(spec: LayerSpec, pictures: list[Picture], ssrc: int) -> list[list[bytes | None]]:
    """Per picture, its RTP packets (None: lost); a payload size 0 leaves the descriptor cut short."""
    out, pid, tl0, seq, ts = [], spec.pid0, spec.tl00, spec.seq0, 4_294_960_000
    for n, pic in enumerate(pictures):
        if pic.tid == 0 and n:
            tl0 += 1
        packets: list[bytes | None] = []
        for k, size in enumerate(pic.packets):
            body = descriptor(spec, pid, tl0, pic, k == 0)
            if size == 0:
                body = body[:max(0, len(body) - 1)]  # a descriptor too short (parse: None)
            else:
                head = bytes([0x00 if pic.key and k == 0 else 0x01]) if k == 0 else b"\x42"
                body += head + bytes((n * 31 + k * 7 + i) & 0xFF for i in range(abs(size) - 1))
            marker = 0x80 if k == len(pic.packets) - 1 else 0
            data = bytes([0x80, marker | 96]) + seq.to_bytes(2, "big") + ts.to_bytes(4, "big") + ssrc.to_bytes(4, "big")
            packets.append(None if size < 0 else data + body)
            seq = (seq + 1) & 0xFFFF
        out.append(packets)
        pid = (pid + 1) & ((1 << spec.pid_bits) - 1 if spec.pid_bits else 0)
        ts = (ts + 3000) & 0xFFFFFFFF
    return out


sizes_st = st.sampled_from([1, 2, 40, 300, 1200, 0, -5])
plain_st = st.builds(Picture, tid=st.sampled_from([0, 0, 1, 2, 2, 3]), sync=st.booleans(), key=st.just(False),
                     packets=st.lists(sizes_st, min_size=1, max_size=3).map(tuple))
key_st = st.builds(Picture, tid=st.sampled_from([0, 0, 0, 1, 2]), sync=st.booleans(), key=st.just(True),
                   packets=st.tuples(st.sampled_from([1, 2, 30]), st.lists(sizes_st, max_size=2)).map(
                       lambda t: (t[0], *t[1])))
pictures_st = st.one_of(plain_st, plain_st, plain_st, plain_st, plain_st, key_st)
"""Keyframes one picture in six; their first packet small (a key bit as the payload's last byte)."""
layer_st = st.builds(
    LayerSpec, pid_bits=st.sampled_from([15, 15, 7, 0]), pid0=st.sampled_from([0, 100, 126, 32760, 32766]),
    tl0=st.sampled_from([True, True, False]), t=st.sampled_from([True, True, True, False]),
    tl00=st.sampled_from([0, 7, 254, 255]), seq0=st.sampled_from([1, 65530, 40000]))
action_st = st.one_of(
    st.tuples(st.just("target"), st.sampled_from(list(VIEWERS)[:2]), st.integers(0, 2)),
    st.tuples(st.just("switch"), st.sampled_from(list(VIEWERS)[:2]), st.integers(0, 1)),
    st.tuples(st.just("nack"), st.sampled_from(list(VIEWERS)), st.lists(st.integers(0, 40), max_size=6)),
    st.tuples(st.just("probe"), st.sampled_from(list(VIEWERS)[:2]), st.integers(1, 4000)),
    st.tuples(st.just("pause"), st.sampled_from(list(VIEWERS)[:2]), st.just(0)),
    st.tuples(st.just("resume"), st.sampled_from(list(VIEWERS)[:2]), st.just(0)),
)


def run(path: str, key: bytes, layers: list[list[list[bytes | None]]], plan: dict[int, list[tuple[str, str, Any]]],
        monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, list[bytes]], dict[str, tuple[Any, ...]]]:
    """The datagrams each viewer got and its consumer's end state, through the ``path`` fan-out."""
    clock = Clock()
    monkeypatch.setattr(sfu.producer, "time", clock)
    monkeypatch.setattr(sfu.consumer, "time", clock)
    monkeypatch.setattr(sfu.extensions, "time", clock)  # the retransmission header's abs-send-time
    producers = [Producer(f"l{i}", PeerId("pub"), VP8, 0x1000 + i,
                          KeyframeRequester(lambda: None, 0.0, lambda d, f: None))  # type: ignore[arg-type,return-value]
                 for i in range(2)]
    plane = Plane(*loaded(), FanoutConfig(mode="native", batch=8)) if path == "native" else None
    consumers: dict[str, Consumer] = {}
    sockets: dict[str, tuple[socket.socket, socket.socket]] = {}
    got: dict[str, list[bytes]] = {name: [] for name in VIEWERS}
    try:
        for p in producers:
            p.plane = plane
        for i, (name, (out, rtx_pt, temporal)) in enumerate(VIEWERS.items()):
            if plane is None:
                c = Consumer(name, producers[0], Wire(PROFILE, key), 0xA0 + i, 100, 0xB0 + i, rtx_pt,
                             False, out, Departures())
            else:
                rx, tx = receiver(), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                tx.setblocking(False)
                sockets[name] = (rx, tx)
                w = native_wire(plane, PROFILE, key, tx, rx.getsockname(), monkeypatch)
                c = NativeConsumer(name, producers[0], w, 0xA0 + i, 100, 0xB0 + i, rtx_pt, False, out, w.departures)
            c.seq_off, c.ts_off, c.rtx_seq = (65000 + 300 * i) & 0xFFFF, 7_000_000 * (i + 1), 65530
            producers[0].add_consumer(c)
            if temporal:
                c.use_temporal()
            consumers[name] = c

        def act(kind: str, name: str, arg: Any) -> None:
            c = consumers[name]
            if kind == "target":
                c.use_temporal(arg)
            elif kind == "switch":
                c.switch_at_keyframe(producers[arg])
            elif kind == "nack":
                last = (c.producer.max_seq + c.seq_off) & 0xFFFF
                c.on_nack([(last - k) & 0xFFFF for k in arg])
            elif kind == "probe":
                c.send_probe(arg)
            elif kind == "pause":
                c.pause()
            else:
                c.resume()

        for n in range(len(layers[0])):
            for action in plan.get(n, []):
                act(*action)
            for i, layer in enumerate(layers):
                for data in layer[n]:
                    if data is not None:
                        producers[i].on_rtp(data)
            for name, (rx, _) in sockets.items():
                got[name] += drain(rx)
        if plane is not None:
            plane.flush()
        for name, (rx, _) in sockets.items():
            got[name] += drain(rx)
        states = {}
        for name, c in consumers.items():
            if plane is None:
                got[name] = list(c.wire.sent)  # type: ignore[attr-defined]
            t = c.temporal
            assert (t is not None) == VIEWERS[name][2]
            assert t is None or isinstance(t, NativeTemporal) == (plane is not None)
            shifts = c._shifts  # the NACK mapping both paths must agree on
            states[name] = (c.seq_off, c.ts_off, c.packets, c.octets, c.rtx_seq, c.switches, c.producer.producer_id,
                            tuple(getattr(t, k) for k in STATE) if t is not None else None,
                            None if shifts is None else [shifts.offset_of((c.seq_off + d) & 0xFFFF)
                                                         for d in range(-600, 10, 7)])
        return got, states
    finally:
        for c in consumers.values():
            c.close()
        if plane is not None:
            plane.close()
        for rx, tx in sockets.values():
            rx.close()
            tx.close()


# Bounded when it fails too: no shrinking (hypothesis may shrink for 5 minutes, pytest-timeout's whole
# budget), the first failing example is reported as found (print_blob: @reproduce_failure replays it).
@settings(max_examples=60, deadline=None, phases=(Phase.explicit, Phase.reuse, Phase.generate), print_blob=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(specs=st.tuples(layer_st, layer_st), pictures=st.tuples(st.lists(pictures_st, min_size=30, max_size=90),
                                                               st.lists(pictures_st, min_size=90, max_size=90)),
       plan=st.dictionaries(st.integers(0, 89), st.lists(action_st, min_size=1, max_size=3), max_size=25))
def test_native_temporal_filter_sends_what_the_python_one_sends(
        specs: tuple[LayerSpec, LayerSpec], pictures: tuple[list[Picture], list[Picture]],
        plan: dict[int, list[tuple[str, str, Any]]], monkeypatch: pytest.MonkeyPatch) -> None:
    count = len(pictures[0])
    first = [Picture(0, False, True, (30,)), *pictures[0][1:]]  # both layers start at a keyframe
    second = [Picture(0, False, True, (30,)), *pictures[1][1:count]]
    layers = [rtp_packets(specs[0], first, 0x1000), rtp_packets(specs[1], second, 0x1001)]
    key = os.urandom(30)
    python_sent, python_state = run("python", key, layers, plan, monkeypatch)
    native_sent, native_state = run("native", key, layers, plan, monkeypatch)
    for name in VIEWERS:
        assert native_state[name] == python_state[name], name
        assert len(native_sent[name]) == len(python_sent[name]), name
        a, b = unprotect_all(PROFILE, key, python_sent[name]), unprotect_all(PROFILE, key, native_sent[name])
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert x == y, f"{name} packet {i}: python {x[:40].hex()} native {y[:40].hex()}"
        assert native_sent[name] == python_sent[name], name
        resent_as_sent(a, VIEWERS[name][1])


def resent_as_sent(packets: list[bytes], rtx_pt: int | None) -> None:
    """Every RTX copy (a NACK's answer or a probe) of a number the viewer already got carries what it
    got under that number: the same timestamp and payload."""
    got: dict[int, tuple[bytes, bytes]] = {}
    for p in packets:
        at = payload_offset(p)
        if p[1] & 0x7F == rtx_pt:
            osn = int.from_bytes(p[at:at + 2], "big")
            if osn in got:
                assert got[osn] == (p[4:8], p[at + 2:]), f"RTX of {osn}"
        elif int.from_bytes(p[2:4], "big") not in got:  # a retransmission without RTX repeats one
            got[int.from_bytes(p[2:4], "big")] = (p[4:8], p[at:])


def test_the_differential_run_really_filters_rewrites_and_resends(monkeypatch: pytest.MonkeyPatch) -> None:
    """One fixed run exercises what the property compares: drops, rewritten ids, a rebase at a spatial
    switch, retransmissions of rewritten payloads (so equal outputs are not equal by emptiness)."""
    spec = LayerSpec(15, 32760, True, True, 250, 65530)
    pattern = [0, 2, 1, 2]
    pics = [Picture(pattern[n % 4], n % 4 in (1, 2), n % 30 == 0, (200, 300)) for n in range(90)]
    other = LayerSpec(7, 100, True, True, 3, 40000)
    layers = [rtp_packets(spec, pics, 0x1000), rtp_packets(other, pics, 0x1001)]
    plan: dict[int, list[tuple[str, str, Any]]] = {
        10: [("target", "t-full-rtx", 0), ("target", "t-bare", 1)], 40: [("switch", "t-full-rtx", 1)],
        50: [("nack", "t-full-rtx", [0, 3, 6, 9]), ("nack", "t-bare", [1, 2])], 70: [("target", "t-full-rtx", 2)],
        80: [("probe", "t-full-rtx", 3000)]}
    key = os.urandom(30)
    python_sent, python_state = run("python", key, layers, plan, monkeypatch)
    native_sent, native_state = run("native", key, layers, plan, monkeypatch)
    assert native_state == python_state and native_sent == python_sent
    full = python_state["t-full-rtx"]
    assert full[5] == 1 and full[6] == "l1" and full[7][3] > 0  # switched, dropped packets
    assert python_state["t-bare"][7][3] > 0
    sent = unprotect_all(PROFILE, key, python_sent["t-full-rtx"])
    rtx = [p for p in sent if p[1] & 0x7F == 97]
    assert rtx, "retransmissions were sent"
    assert full[7][5] != 0, "TL0PICIDX was rebased at the switch"


def media_of(profile: int, key: bytes, datagrams: list[bytes]) -> list[tuple[int, int]]:
    """(sequence number, timestamp) of each packet a viewer without RTX or NACKs got."""
    got = unprotect_all(profile, key, datagrams)
    return [(int.from_bytes(p[2:4], "big"), int.from_bytes(p[4:8], "big")) for p in got]


def test_a_packet_srtp_refuses_is_counted_on_neither_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The publisher's numbering jumps by 40,000 (a restart): each viewer's numbers jump as far, which
    its SRTP session reads as an index 25,536 back, older than its replay window: it refuses those
    packets. Neither path sends them, and neither counts them in ``packets``/``octets`` (the sender
    report's counts are of packets sent; the Python path used to count them: 62 against 0)."""
    spec = LayerSpec(15, 100, True, True, 0, 40000)  # each viewer's numbers past 32,768: no wrap guessed
    pics = [Picture(n % 3, n % 3 == 1, n % 30 == 0, (100, 200)) for n in range(60)]
    layers = [rtp_packets(spec, pics, 0x1000), rtp_packets(spec, pics, 0x1001)]
    for picture in layers[0][40:]:  # pictures 40 on: numbered 40,000 further (the rest of the stream)
        for k, data in enumerate(picture):
            assert data is not None
            seq = (int.from_bytes(data[2:4], "big") + 40_000) & 0xFFFF
            picture[k] = data[:2] + seq.to_bytes(2, "big") + data[4:]
    key = os.urandom(30)
    python_sent, python_state = run("python", key, layers, {}, monkeypatch)
    native_sent, native_state = run("native", key, layers, {}, monkeypatch)
    assert native_state == python_state and native_sent == python_sent
    for name in VIEWERS:
        packets, octets = python_state[name][2:4]
        got = unprotect_all(PROFILE, key, python_sent[name])
        assert packets == len(got) == 80, name  # 40 pictures sent, the 20 after the jump refused
        assert octets == sum(len(p) - payload_offset(p) for p in got), name


def test_a_switch_while_resuming_restarts_on_the_target_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """What made the differential test's numbers jump back: a consumer resumed (waiting for a keyframe)
    and then moved to the other layer waited on both; the current layer's keyframe came first and
    handed it over with the other layer's offsets (a jump of ~40,000), and it then forwarded both
    layers. Now it restarts on the target alone, numbering on from its last packet, on both paths
    (as does a consumer moved while paused)."""
    spec, other = LayerSpec(15, 100, True, True, 0, 1), LayerSpec(15, 100, True, True, 0, 40000)
    pics = [Picture(n % 3, False, n % 20 == 0, (100,)) for n in range(90)]
    layers = [rtp_packets(spec, pics, 0x1000), rtp_packets(other, pics, 0x1001)]
    plan: dict[int, list[tuple[str, str, Any]]] = {
        5: [("pause", "t-bare", 0), ("pause", "t-full-rtx", 0)], 6: [("resume", "t-bare", 0)],
        7: [("switch", "t-bare", 1), ("switch", "t-full-rtx", 1)], 8: [("resume", "t-full-rtx", 0)],
        50: [("nack", "t-full-rtx", [0, 1, 2, 3])]}
    key = os.urandom(30)
    python_sent, python_state = run("python", key, layers, plan, monkeypatch)
    native_sent, native_state = run("native", key, layers, plan, monkeypatch)
    assert native_state == python_state and native_sent == python_sent
    got = media_of(PROFILE, key, python_sent["t-bare"])
    assert python_state["t-bare"][2] == len(got) == 5 + 70  # pictures 0-4, then 20-89 on layer 1
    assert all((b[0] - a[0]) & 0xFFFF == 1 and 0 < (b[1] - a[1]) & 0xFFFFFFFF < 0x80000000
               for a, b in itertools.pairwise(got))
    full = python_state["t-full-rtx"]
    assert full[5] == 1 and full[6] == "l1"  # one switch counted, on layer 1
    assert full[2] == 5 + 70


def test_nacks_are_answered_from_the_segment_that_sent_each_number(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two restarts close together (pause, resume at the next keyframe, twice), then NACKs reaching
    back past both: numbers since the first restart are answered with what the viewer got under them,
    older ones not at all (only the last segment before the current one is kept; answering one of them
    with that segment's offsets sent another packet, which the differential test once caught)."""
    spec = LayerSpec(15, 100, True, True, 0, 40000)
    pics = [Picture(0, False, n % 3 == 0, (100, 200)) for n in range(30)]
    layers = [rtp_packets(spec, pics, 0x1000), rtp_packets(spec, pics, 0x1001)]
    plan: dict[int, list[tuple[str, str, Any]]] = {
        10: [("pause", "t-full-rtx", 0)], 11: [("resume", "t-full-rtx", 0)], 13: [("pause", "t-full-rtx", 0)],
        14: [("resume", "t-full-rtx", 0)], 20: [("nack", "t-full-rtx", list(range(40)))]}
    key = os.urandom(30)
    python_sent, python_state = run("python", key, layers, plan, monkeypatch)
    native_sent, native_state = run("native", key, layers, plan, monkeypatch)
    assert native_state == python_state and native_sent == python_sent
    got = unprotect_all(PROFILE, key, python_sent["t-full-rtx"])
    resent_as_sent(got, 97)
    media = [p for p in got if p[1] & 0x7F == 100]
    # two packets a picture: 0-9, 12 (the first restart), 15-29 (the second, at 15; NACKed at 20): the
    # NACK reaches back over 15-19 and 12 (answered) and 0-9 (28 numbers, not answered)
    assert len(media) == 2 * 26
    assert len(got) - len(media) == 2 * 6
