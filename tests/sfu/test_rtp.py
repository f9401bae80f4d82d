"""Pure RTP/RTCP codecs: examples, and hypothesis fuzzing (malformed input is rejected, never raised)."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from sfu import rtcp
from sfu.rtp import (
    HEADER,
    continuity_offsets,
    is_h264_keyframe_start,
    is_vp8_keyframe_start,
    payload_end,
    payload_offset,
    seq_delta,
)

FANOUT_PATHS = ()
"""No Worker or WorkerPool here: the fan-out setting does not reach these tests; one run (tests/conftest.py)."""


def test_payload_offset_plain_csrc_and_extension() -> None:
    assert payload_offset(HEADER.pack(0x80, 96, 1, 2, 3) + b"abc") == 12
    assert payload_offset(HEADER.pack(0x82, 96, 1, 2, 3) + b"\0" * 8 + b"x") == 20
    ext = struct.pack("!HH", 0xBEDE, 1) + b"\x10\xff\0\0"
    assert payload_offset(HEADER.pack(0x90, 96, 1, 2, 3) + ext + b"p") == 20
    padded = HEADER.pack(0xA0, 96, 1, 2, 3) + b"pay" + b"\0\0\3"
    assert payload_offset(padded) == 12 and padded[12 : payload_end(padded)] == b"pay"


def test_payload_offset_rejects_malformed() -> None:
    assert payload_offset(b"") == -1
    assert payload_offset(HEADER.pack(0x40, 96, 1, 2, 3)) == -1  # version 1
    assert payload_offset(HEADER.pack(0x8F, 96, 1, 2, 3)) == -1  # 15 CSRCs missing
    assert payload_offset(HEADER.pack(0x90, 96, 1, 2, 3) + struct.pack("!HH", 0xBEDE, 9)) == -1
    assert payload_offset(HEADER.pack(0xA0, 96, 1, 2, 3) + b"\0") == -1  # padding 0


@given(st.binary(max_size=200))
def test_payload_offset_never_raises_and_stays_in_bounds(data: bytes) -> None:
    off = payload_offset(data)
    assert off == -1 or 12 <= off <= payload_end(data) <= len(data)


@given(st.binary(max_size=64))
def test_keyframe_detectors_never_raise(data: bytes) -> None:
    assert is_vp8_keyframe_start(data) in (True, False)
    assert is_h264_keyframe_start(data) in (True, False)


def test_keyframe_examples() -> None:
    assert is_vp8_keyframe_start(bytes([0x10, 0x00]))  # S=1, PID 0, P=0
    assert not is_vp8_keyframe_start(bytes([0x10, 0x01]))  # inter frame
    assert not is_vp8_keyframe_start(bytes([0x00, 0x00]))  # not a partition start
    assert is_vp8_keyframe_start(bytes([0x90, 0x80, 0x81, 0x23, 0x00]))  # X, I with 15-bit picture id
    assert is_h264_keyframe_start(bytes([0x65]))  # IDR
    assert is_h264_keyframe_start(bytes([0x7C, 0x85]))  # FU-A start of IDR
    assert not is_h264_keyframe_start(bytes([0x7C, 0x05]))  # FU-A middle
    assert is_h264_keyframe_start(bytes([0x78, 0, 2, 0x67, 0]))  # STAP-A with SPS
    assert not is_h264_keyframe_start(bytes([0x41]))


@given(st.binary(max_size=300))
def test_rtcp_split_raises_only_value_error(data: bytes) -> None:
    try:
        for pt, _fmt, body in rtcp.split(data):
            assert 0 <= pt <= 255
            if pt == rtcp.RTPFB:
                rtcp.nack_seqs(body)
            if pt == rtcp.PSFB:
                rtcp.remb_bitrate(body)
    except ValueError:
        pass


@given(st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=40))
def test_nack_roundtrip(seqs: list[int]) -> None:
    packet = rtcp.build_nack(1, 2, seqs)
    [(pt, fmt, body)] = list(rtcp.split(packet))
    assert (pt, fmt) == (rtcp.RTPFB, rtcp.FMT_NACK)
    assert rtcp.feedback_ssrcs(body) == (1, 2)
    assert set(rtcp.nack_seqs(body)) == set(seqs)


def test_reports_roundtrip() -> None:
    sr = rtcp.build_sr(7, rtcp.ntp_from_unix(1_700_000_000.5), 1234, 10, 1000)
    [(pt, _, body)] = list(rtcp.split(sr))
    assert pt == rtcp.SR and rtcp.sr_info(body) == (7, rtcp.ntp_from_unix(1_700_000_000.5), 1234)
    assert body[16:24] == struct.pack("!II", 10, 1000)
    remb = rtcp.build_remb(1, 1_500_000, [5, 6])
    [(pt, fmt, body)] = list(rtcp.split(remb))
    assert (pt, fmt) == (rtcp.PSFB, rtcp.FMT_REMB)
    assert abs(rtcp.remb_bitrate(body) - 1_500_000) < 1_500_000 / 1000  # type: ignore[operator]
    compound = rtcp.build_rr(1, 2, 3, 4, 5, 6, 7, 8) + rtcp.build_pli(1, 2)
    assert [p for p, _, _ in rtcp.split(compound)] == [rtcp.RR, rtcp.PSFB]


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF),
       st.floats(0, 10))
def test_continuity_across_a_producer_switch(last_seq: int, last_ts: int, seq: int, ts: int, elapsed: float) -> None:
    seq_off, ts_off = continuity_offsets(last_seq, last_ts, elapsed, 90000, seq, ts)
    assert (seq + seq_off) & 0xFFFF == (last_seq + 1) & 0xFFFF
    assert seq_delta((seq + seq_off) & 0xFFFF, last_seq) == 1
    assert ((ts + ts_off) - last_ts) & 0xFFFFFFFF == max(1, int(elapsed * 90000))
