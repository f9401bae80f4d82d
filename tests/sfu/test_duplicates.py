"""A publisher's packet that arrives twice reaches each viewer once: a network duplicate, a repair
that came after the packet itself, and Chrome's payload padding (a bandwidth probe on the RTX stream
that resends a recent packet) are dropped at the producer and counted; a packet that was lost and is
repaired, a late packet never seen, and audio (no cache) still go through."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sfu.producer import CACHE_SIZE, Codec, Producer
from sfu.rtp import HEADER
from sfu.types import PeerId
from tests.sfu.test_joins import CONT, DELTA, KEY, Recorder, rtp, video_producer
from tests.sfu.test_malformed import make_transport

FANOUT_PATHS = ()
"""No Worker or WorkerPool here: the fan-out setting does not reach these tests; one run (tests/conftest.py)."""

RTX_SSRC = 0x5678
RTX_PT = 97


def viewing() -> tuple[Producer, Recorder]:
    plain, _ = video_producer()
    producer = Producer("p", PeerId("pub"), plain.codec, plain.ssrc, plain.keyframes, send_nack=lambda seqs: None)
    viewer = Recorder()
    producer.add_consumer(viewer)  # type: ignore[arg-type]
    producer.on_rtp(rtp(100, 3000, KEY))  # the viewer starts here
    return producer, viewer


def test_a_packet_received_twice_is_forwarded_once() -> None:
    producer, viewer = viewing()
    producer.on_rtp(rtp(101, 3000, CONT, 0x80))
    producer.on_rtp(rtp(101, 3000, CONT, 0x80))  # the network duplicated it
    producer.on_rtp(rtp(100, 3000, KEY))  # and an older one
    producer.on_rtp(rtp(102, 6000, DELTA))
    assert [s for s, *_ in viewer.got] == [100, 101, 102]
    assert producer.duplicates == 2 and producer.packets_received == 3


def test_a_lost_packet_repaired_and_a_late_one_go_through_once() -> None:
    producer, viewer = viewing()
    producer.on_rtp(rtp(103, 6000, DELTA))  # 101 and 102 lost: NACKed
    assert set(producer.missing) == {101, 102}
    producer.on_rtp(rtp(101, 3000, CONT))  # the repair
    producer.on_rtp(rtp(101, 3000, CONT))  # the repair of the repair (a second NACK answered)
    producer.on_rtp(rtp(102, 3000, CONT, 0x80))
    assert [s for s, *_ in viewer.got] == [100, 103, 101, 102]
    assert producer.duplicates == 1 and producer.repaired == 2


def test_the_same_number_with_another_timestamp_is_not_a_duplicate() -> None:
    """A publisher that restarted its numbering may reuse a number: its timestamp differs."""
    producer, viewer = viewing()
    producer.on_rtp(rtp(101, 3000, CONT))
    producer.on_rtp(rtp(101, 90_000_000, KEY))
    assert [s for s, *_ in viewer.got] == [100, 101, 101] and producer.duplicates == 0


def test_a_packet_older_than_the_cache_is_not_taken_for_one_in_it() -> None:
    producer, viewer = viewing()
    for n in range(1, CACHE_SIZE + 1):
        producer.on_rtp(rtp(100 + n, 3000 + n, DELTA))
    producer.on_rtp(rtp(100, 3000, KEY))  # its slot holds 100 + CACHE_SIZE now
    assert producer.duplicates == 0 and viewer.got[-1][0] == 100


def test_audio_has_no_cache_and_forwards_every_packet() -> None:
    audio = Producer("a", PeerId("pub"), Codec("audio", "audio/opus", 48000, 111), 2000,
                     video_producer()[0].keyframes)
    listener = Recorder()
    audio.add_consumer(listener)  # type: ignore[arg-type]
    for _ in range(2):
        audio.on_rtp(HEADER.pack(0x80, 111, 7, 960, 2000) + b"opus")
    assert len(listener.got) == 2 and audio.duplicates == 0


def rtx(seq: int, original: int, ts: int, payload: bytes) -> bytes:
    """RFC 4588: the original sequence number first in the payload, on the RTX stream's SSRC."""
    return HEADER.pack(0x80, RTX_PT, seq, ts, RTX_SSRC) + original.to_bytes(2, "big") + payload


async def test_chromes_payload_padding_on_the_rtx_stream_is_a_probe_not_a_packet_for_viewers() -> None:
    t, producer = make_transport()
    t._rtx[RTX_SSRC] = producer
    viewer = Recorder()
    producer.add_consumer(viewer)  # type: ignore[arg-type]
    t.on_rtp(HEADER.pack(0x80, 96, 500, 9000, 0x1234) + KEY)
    t.on_rtp(HEADER.pack(0x80, 96, 502, 12000, 0x1234) + DELTA)  # 501 lost
    t.on_rtp(rtx(1, 500, 9000, KEY))  # payload padding: a resend of 500, which arrived
    t.on_rtp(rtx(2, 501, 9000, CONT))  # the repair of 501
    t.on_rtp(rtx(3, 502, 12000, DELTA))  # payload padding again
    assert [s for s, *_ in viewer.got] == [500, 502, 501]
    assert producer.duplicates == 2 and t.probes == 2 and producer.rtx_received == 3
    await t.pc.close()


@settings(max_examples=200)
@given(st.lists(st.tuples(st.integers(0, 40), st.booleans()), max_size=120))
def test_whatever_arrives_each_packet_reaches_the_viewer_at_most_once(arrivals: list[tuple[int, bool]]) -> None:
    """Any order, any repeats (a small window: no wrap of the cache): each (number, timestamp) once."""
    producer, viewer = viewing()
    for n, key in arrivals:
        producer.on_rtp(rtp(101 + n, 3000 * (n + 1), KEY if key else DELTA))
    got = [(s, ts) for s, ts, *_ in viewer.got]
    assert len(got) == len(set(got))
    assert {(s, ts) for s, ts in got} == {(100, 3000)} | {(101 + n, 3000 * (n + 1)) for n, _ in arrivals}
