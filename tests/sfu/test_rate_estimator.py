"""``sfu.aiortc_private.rate``: aiortc's receive-side estimator for less CPU gives exactly aiortc's REMBs."""

from __future__ import annotations

import asyncio
import random

import aiortc.rtcrtpreceiver
from aiortc import RTCPeerConnection, RTCRtpReceiver, rate

from sfu import aiortc_private
from sfu.aiortc_private import QuickRateCounter, QuickRemoteBitrateEstimator
from sfu.types import PeerId
from sfu.worker import Worker
from switchboard.ids import RoomId
from tests.sfu.peers import start_publisher, start_viewer
from tests.sfu.test_forwarding import wait_for

ROOM = RoomId("quick-rate")

AIORTC_SOURCES = {
    "RateCounter": "07a0d63e5d1a3289",
    "OveruseEstimator.update_min_frame_period": "3570bc440684171d",
    "RemoteBitrateEstimator.__init__": "0f320f9ada5ef45c",
    "RTCRtpReceiver.__init__": "3e3b7b5cefbaac6f",
}


def _stream(seed: int) -> list[tuple[int, int, int, int]]:
    """(arrival ms, abs-send-time, payload size, ssrc) of 30 s of two tracks: frames of bursts of
    packets, jitter, a late packet now and then, a stretch of growing queueing delay (overuse), a
    1.5 s silence (the counter's window empties and it resets) and arrivals a millisecond backwards."""
    rng = random.Random(seed)
    out: list[tuple[int, int, int, int]] = []
    queue_ms = 0.0
    for frame in range(900):
        sent_s = frame / 30 + (1.5 if frame >= 600 else 0.0)
        if 300 <= frame < 360:
            queue_ms += 3.0  # the link fills: arrivals fall behind the send times
        elif queue_ms > 0:
            queue_ms = max(0.0, queue_ms - 5.0)
        for k in range(rng.randint(1, 6)):
            at_s = sent_s + 0.0004 * k
            arrival = int(1_000_000 + 1000 * at_s + queue_ms + rng.uniform(0, 4))
            if rng.random() < 0.02:
                arrival -= 1
            abs_send = int(at_s * (1 << 18)) & 0xFFFFFF
            out.append((arrival, abs_send, rng.randint(200, 1200), 1111 if k % 3 else 2222))
    return out


def _state(e: rate.RemoteBitrateEstimator) -> tuple[object, ...]:
    est, det, ctl = e.estimator, e.detector, e.rate_control
    return (tuple(map(tuple, est.E)), est.offset(), est.slope, est.avg_noise, est.var_noise, est.num_of_deltas(),
            list(est.ts_delta_hist), det.state(), det.threshold, ctl.current_bitrate, ctl.state, e.last_update_ms,
            e.incoming_bitrate.rate(e.last_update_ms or 0))


def test_the_quick_estimator_sends_every_remb_aiortcs_sends_and_ends_in_its_state() -> None:
    for seed in range(3):
        slow, quick = rate.RemoteBitrateEstimator(), QuickRemoteBitrateEstimator()
        rembs = 0
        for packet in _stream(seed):
            expected = slow.add(*packet)
            assert quick.add(*packet) == expected, packet
            rembs += expected is not None
        assert rembs > 20
        assert _state(quick) == _state(slow)


def test_the_quick_counter_gives_aiortcs_rate_over_gaps_jumps_and_resets() -> None:
    rng = random.Random(7)
    slow, quick = rate.RateCounter(1000, 8000), QuickRateCounter(1000, 8000)
    now = 5000
    for i in range(20_000):
        now += rng.choice([0, 0, 1, 1, 2, 5, 30, 400, 999, 1000, 1001, 2500, -1]) if i % 97 else 0
        value = rng.randint(0, 1500)
        slow.add(value, now)
        quick.add(value, now)
        assert quick.rate(now) == slow.rate(now)
        if i % 4999 == 4998:
            slow.reset()
            quick.reset()
            assert quick.rate(now) is None and slow.rate(now) is None


def test_aiortcs_receivers_build_the_quick_estimator_once_asked() -> None:
    before = aiortc.rtcrtpreceiver.RemoteBitrateEstimator
    try:
        aiortc_private.use_quick_rate_estimation()
        aiortc_private.use_quick_rate_estimation()

        async def receiver() -> RTCRtpReceiver:
            pc = RTCPeerConnection()
            try:
                return pc.addTransceiver("video", direction="sendonly").receiver
            finally:
                await pc.close()

        built = asyncio.run(receiver())._RTCRtpReceiver__remote_bitrate_estimator  # type: ignore[attr-defined]
        assert isinstance(built, QuickRemoteBitrateEstimator)
    finally:
        aiortc.rtcrtpreceiver.RemoteBitrateEstimator = before  # type: ignore[misc]


async def test_a_workers_subscriber_receivers_get_the_quick_estimator_and_its_viewer_frames(worker: Worker) -> None:
    """Each transceiver of a subscriber's peer connection has a receiver the SFU never feeds; the
    worker makes aiortc build it with the quick estimator (aiortc's own costs ~0.9 ms a receiver)."""
    pub = await start_publisher(worker, ROOM, "pub", audio=False, size=(160, 120))
    viewer = None
    try:
        await wait_for(lambda: len(worker.routers[ROOM].producers) == 1, 10)
        viewer = await start_viewer(worker, ROOM, "v")
        await viewer.wait_frames(3, timeout=30)
        pc = worker.routers[ROOM].transports[PeerId("v")].pc
        estimators = [tr.receiver._RTCRtpReceiver__remote_bitrate_estimator for tr in pc.getTransceivers()]
        assert estimators and all(isinstance(e, QuickRemoteBitrateEstimator) for e in estimators)
    finally:
        if viewer is not None:
            await viewer.close()
        await pub.close()


def test_the_aiortc_code_copied_or_replaced_is_unchanged() -> None:
    """An aiortc upgrade that changes any of it fails here: check the quick classes against it again."""
    assert aiortc.rtcrtpreceiver.RemoteBitrateEstimator is rate.RemoteBitrateEstimator or issubclass(
        aiortc.rtcrtpreceiver.RemoteBitrateEstimator, rate.RemoteBitrateEstimator)
    assert aiortc_private.aiortc_sources() == AIORTC_SOURCES
