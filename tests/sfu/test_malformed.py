"""Garbage on the receive path is dropped and counted, never raised (no network: hooks called directly)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfu.producer import Codec, KeyframeRequester, Producer
from sfu.rtp import HEADER
from sfu.transport import Role, Transport
from sfu.types import PeerId
from switchboard.ids import UserId

FANOUT_PATHS = ()
"""No Worker or WorkerPool here: the fan-out setting does not reach these tests; one run (tests/conftest.py)."""


def make_transport() -> tuple[Transport, Producer]:
    t = Transport(PeerId("p"), UserId("u"), Role.PUBLISHER, hidden=False, addresses=("127.0.0.1",), announced="",
                  on_producer=lambda t, p: None, new_producer=lambda t, c, s: None,  # type: ignore[arg-type,return-value]
                  on_failed=lambda t, r: None)
    producer = Producer("p1", PeerId("p"), Codec("video", "video/VP8", 90000, 96), 0x1234,
                        KeyframeRequester(lambda: None, 0.5, lambda *a: None))
    t.producers[0x1234] = producer
    return t, producer


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=300)
@given(st.binary(max_size=120))
async def test_garbage_rtp_and_rtcp_never_raise(data: bytes) -> None:
    t, producer = make_transport()
    t.on_rtp(data)
    t.on_rtp(HEADER.pack(0x80 | (data[0] & 0x3F if data else 0), 96, 1, 2, 0x1234) + data)
    t.on_rtcp(data)
    assert t.malformed_rtp + t.unknown_ssrc + producer.malformed + producer.packets_received >= 2
    await t.pc.close()


async def test_counts_each_kind_of_bad_input() -> None:
    t, producer = make_transport()
    t.on_rtp(b"\x80\x60")  # too short
    t.on_rtp(HEADER.pack(0x80, 96, 1, 2, 0x9999) + b"x")  # unknown ssrc
    t.on_rtp(HEADER.pack(0x8F, 96, 1, 2, 0x1234))  # CSRCs missing
    t.on_rtcp(b"\x80\xc8\x00\x09")  # length beyond the datagram
    t.on_rtp(HEADER.pack(0x80, 96, 1, 2, 0x1234) + b"\x10\x00")  # a good keyframe start
    assert (t.malformed_rtp, t.unknown_ssrc, producer.malformed, t.malformed_rtcp) == (1, 1, 1, 1)
    assert producer.packets_received == 1
    await t.pc.close()
