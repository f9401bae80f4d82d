"""Depacketizers and the clip buffer as pure functions: known payloads, then hypothesis fuzzing
(malformed payloads never raise, they are counted drops), then the buffer on an injected clock."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sfu.clips import LONGER_S, SHORTER_S, ClipBuffer, window
from sfu.depacketize import Drops, frames, h264_nals, h264_sps_size, vp8_payload
from sfu.rtp import is_vp8_keyframe_start

FANOUT_PATHS = ()
"""No Worker or WorkerPool here: the fan-out setting does not reach these tests; one run (tests/conftest.py)."""


def vp8_packets(ts: int, seq: int, body: bytes, key: bool, size: int = 8) -> list[tuple[int, int, int, bytes]]:
    frame = (b"\x00" if key else b"\x01") + body  # P bit of the frame tag
    chunks = [frame[i:i + size] for i in range(0, len(frame), size)]
    out = []
    for i, chunk in enumerate(chunks):
        desc = bytes([0x90 if i == 0 else 0x80, 0x80, 0x05])  # X, S on the first; I: 7-bit picture id
        out.append((seq + i, ts, int(i == len(chunks) - 1), desc + chunk))
    return out


def test_vp8_frames_are_reassembled_and_holes_wait_for_a_keyframe() -> None:
    packets = (vp8_packets(0, 0, b"a" * 20, True) + vp8_packets(3000, 3, b"b" * 20, False)
               + vp8_packets(6000, 6, b"c" * 20, False))
    drops = Drops()
    out = frames("video/VP8", packets, drops)
    assert [f.timestamp for f in out] == [0, 3000, 6000] and out[0].keyframe and not out[1].keyframe
    assert out[0].data == b"\x00" + b"a" * 20
    del packets[4]  # a hole in the second frame: it and the next (inter) frame are dropped
    drops = Drops()
    assert [f.timestamp for f in frames("video/VP8", packets, drops)] == [0]
    assert drops.incomplete == 1 and drops.undecodable == 1
    drops = Drops()
    assert frames("video/VP8", vp8_packets(0, 0, b"x" * 20, False), drops) == [] and drops.undecodable == 1


def test_vp8_descriptor() -> None:
    assert vp8_payload(b"\x90\x80\x85\x01abc") == (True, b"abc")  # 15-bit picture id
    assert vp8_payload(b"\x10x") == (True, b"x")
    assert vp8_payload(b"\x90") is None and vp8_payload(b"") is None and vp8_payload(b"\x10") is None


SPS = bytes.fromhex("6742c00dd90141fa10000003001000000303c8f142a480")
"""A baseline SPS for 320x240 (from libx264)."""
PPS = bytes.fromhex("68cb83cb20")


def test_h264_single_stap_a_and_fu_a_become_annex_b() -> None:
    stap = b"\x18" + len(SPS).to_bytes(2, "big") + SPS + len(PPS).to_bytes(2, "big") + PPS
    idr = b"\x65" + b"i" * 30
    fu = [b"\x7c\x85" + idr[1:11], b"\x7c\x05" + idr[11:21], b"\x7c\x45" + idr[21:]]
    packets = [(0, 0, 0, stap), (1, 0, 0, fu[0]), (2, 0, 0, fu[1]), (3, 0, 1, fu[2]), (4, 3000, 1, b"\x41pframe")]
    drops = Drops()
    out = frames("video/H264", packets, drops)
    start = b"\x00\x00\x00\x01"
    assert out[0].data == start + SPS + start + PPS + start + idr and out[0].keyframe
    assert out[1].data == start + b"\x41pframe" and not out[1].keyframe and drops.total == 0
    assert h264_sps_size(SPS) == (320, 240)
    assert h264_nals(b"\x18\x00\x09ab") is None  # a STAP-A unit longer than the payload
    assert frames("video/H264", [(0, 0, 1, b"\x7c\x05tail")], Drops()) == []  # FU-A without its start


def test_opus_is_one_frame_per_payload() -> None:
    drops = Drops()
    out = frames("audio/opus", [(0, 0, 1, b"\xfc\x01"), (1, 960, 1, b""), (2, 1920, 1, b"\xfc\x02")], drops)
    assert [f.timestamp for f in out] == [0, 1920] and drops.malformed == 1


packet = st.tuples(st.integers(0, 2**20), st.integers(0, 2**33), st.integers(0, 1), st.binary(max_size=40))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["video/VP8", "video/H264", "audio/opus"]), st.lists(packet, max_size=30))
def test_malformed_payloads_are_counted_never_raised(mime: str, packets: list[tuple[int, int, int, bytes]]) -> None:
    packets.sort()
    drops = Drops()
    out = frames(mime, packets, drops)
    assert len(out) + drops.total <= len(packets) + len(packets)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_sps_parser_never_raises(data: bytes) -> None:
    size = h264_sps_size(b"\x67" + data)
    assert size is None or (size[0] > 0 and size[1] > 0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_buffer_starts_at_a_keyframe_and_keeps_the_horizon_only() -> None:
    clock = Clock()
    buf = ClipBuffer(10, 2, is_vp8_keyframe_start, clock)
    seq = 0
    buf.add(seq, 0, 1, b"\x10\x01inter")  # before any keyframe: nothing to start from
    assert not buf.entries
    for frame in range(30 * 40):  # 40 s at 30 fps, a keyframe every 2 s
        clock.now = frame / 30
        key = frame % 60 == 0
        buf.add(seq, frame * 3000, 1, (b"\x10\x00" if key else b"\x10\x01") + b"x" * 100)
        seq += 1
    span = buf.entries[-1][0] - buf.entries[0][0]
    assert 10 <= span <= 10 + 2 * 2 and is_vp8_keyframe_start(buf.entries[0][4])
    assert buf.bytes == sum(len(e[4]) for e in buf.entries)


def test_audio_buffer_trims_by_age_and_bytes_are_capped() -> None:
    clock = Clock()
    audio = ClipBuffer(5, 1, None, clock)
    for i in range(50 * 20):
        clock.now = i / 50
        audio.add(i, i * 960, 1, b"o" * 80)
    assert audio.entries[-1][0] - audio.entries[0][0] <= 6
    big = ClipBuffer(1, 1, is_vp8_keyframe_start, clock)
    for i in range(400):
        clock.now = 100 + i / 100
        big.add(i, i, 1, (b"\x10\x00" if i % 50 == 0 else b"\x10\x01") + b"z" * 60_000)
    assert big.bytes <= big.max_bytes + 60_002 and big.shed > 0  # checked once per frame


@settings(max_examples=300, deadline=None)
@given(phase=st.floats(0, 4), gap=st.floats(0.5, 4.2),
       jitter=st.lists(st.floats(-0.05, 0.05), min_size=20, max_size=20), end=st.floats(100, 10_000))
def test_a_30_s_window_lasts_28_to_31_s_whatever_the_keyframe_phase(
        phase: float, gap: float, jitter: list[float], end: float) -> None:
    """What the buffer holds (keyframes every ``gap`` s, the oldest at least 32 s back, as
    ``ClipBuffer`` keeps them) always gives a 28-31 s window starting at a keyframe."""
    keys, k = [], end - phase
    while k > end - 32 - gap:
        keys.append(k + jitter[len(keys) % 20])
        k -= gap
    keys.sort()
    start, stop = window(keys, end, 30.0)
    assert start in keys and stop <= end
    assert 30.0 - SHORTER_S <= stop - start <= 30.0 + LONGER_S
    assert abs(start - (end - 30.0)) <= max(gap, 2.0) + 0.1


def test_a_young_session_clips_what_it_has_and_audio_only_clips_the_last_seconds() -> None:
    assert window([90.0, 94.0], 100.0, 30.0) == (90.0, 100.0)
    assert window([], 100.0, 30.0) == (70.0, 100.0)
    assert window([69.0, 73.0], 100.0, 30.0) == (69.0, 69.0 + 30.95)  # nearest is 31 s back: the tail goes
