"""A publisher transport's transport-cc feedback with no network (hooks called directly, RTCP captured):
every number it saw is acknowledged, padding probes included; garbage never raises."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfu import rtcp, twcc
from sfu.rtp import HEADER
from tests.sfu.test_extensions_units import packet
from tests.sfu.test_malformed import make_transport

FANOUT_PATHS = ()
"""No Worker or WorkerPool here: the fan-out setting does not reach these tests; one run (tests/conftest.py)."""

TWCC_ID = 6


class CapturingWire:
    def __init__(self) -> None:
        self.rtcp: list[bytes] = []

    def send_rtcp(self, data: bytes) -> None:
        self.rtcp.append(data)

    def refresh(self) -> bool:
        return True


def feedbacks(wire: CapturingWire) -> list[twcc.Feedback]:
    return [twcc.parse(body) for data in wire.rtcp for pt, fmt, body in rtcp.split(data)
            if (pt, fmt) == (twcc.RTPFB, twcc.FMT_TWCC)]


async def test_every_number_is_acknowledged_probes_included() -> None:
    t, producer = make_transport()
    wire = CapturingWire()
    t.wire = wire  # type: ignore[assignment]
    t.feedback = twcc.FeedbackSender(TWCC_ID, t.rtcp_ssrc)
    rtx_ssrc = 0x5678
    t._rtx[rtx_ssrc] = producer
    sent = []
    for n in range(50):
        if n % 10 == 9:  # a padding-only probe on the RTX stream
            probe = packet([(TWCC_ID, n.to_bytes(2, "big"))], payload=b"")
            probe = (bytes([probe[0] | 0x20]) + probe[1:8] + rtx_ssrc.to_bytes(4, "big") + probe[12:]
                     + bytes(3) + b"\x04")
            t.on_rtp(probe)
        else:
            data = packet([(TWCC_ID, n.to_bytes(2, "big"))], seq=1000 + n)
            t.on_rtp(data[:8] + (0x1234).to_bytes(4, "big") + data[12:])
        sent.append(n)
    t.tick()  # flushes what the interval held back
    acked = {seq: at for fb in feedbacks(wire) for seq, at in fb.arrivals}
    assert sorted(acked) == sent and all(at is not None for at in acked.values())
    assert t.probes == 5 and t.malformed_rtp == 0
    assert producer.packets_received == 45
    await t.pc.close()


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=200)
@given(st.binary(max_size=80))
async def test_garbage_with_an_extension_never_raises(data: bytes) -> None:
    t, _ = make_transport()
    t.wire = CapturingWire()  # type: ignore[assignment]
    t.feedback = twcc.FeedbackSender(TWCC_ID, t.rtcp_ssrc)
    t.on_rtp(HEADER.pack(0x90, 96, 1, 2, 0x1234) + data)
    t.on_rtp(HEADER.pack(0x90, 96, 1, 2, 0x9999) + data)
    t.on_rtcp(bytes([0x8F, twcc.RTPFB]) + data)
    t.tick()
    await t.pc.close()
