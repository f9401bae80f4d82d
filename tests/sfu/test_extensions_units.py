"""Header extensions without a network: SDP completion, element parsing (fuzzed), and what a
consumer writes for recorded publisher packets when the two sides' ids differ."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sfu import extensions as ext
from sfu.consumer import Consumer
from sfu.producer import Codec, KeyframeRequester, Producer
from sfu.rtp import payload_offset
from sfu.twcc import Departures
from sfu.types import PeerId

FANOUT_PATHS = ()
"""No Worker or WorkerPool here: the fan-out setting does not reach these tests; one run (tests/conftest.py)."""

OFFER = "\r\n".join([
    "v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0", "a=group:BUNDLE 0 1",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111", "c=IN IP4 0.0.0.0", "a=mid:0",
    "a=extmap:14 urn:ietf:params:rtp-hdrext:ssrc-audio-level", "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
    f"a=extmap:6 {ext.TRANSPORT_CC}", "a=extmap:2 urn:example:unknown",
    "a=rtpmap:111 opus/48000/2", "a=rtcp-fb:111 transport-cc",
    "m=video 9 UDP/TLS/RTP/SAVPF 96 97", "c=IN IP4 0.0.0.0", "a=mid:1",
    "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid", f"a=extmap:6 {ext.TRANSPORT_CC}",
    f"a=extmap:10 {ext.RID}", f"a=extmap:11 {ext.REPAIRED_RID}", f"a=extmap:13 {ext.VIDEO_ORIENTATION}",
    "a=rtpmap:96 VP8/90000", "a=rtcp-fb:96 transport-cc", "a=rtcp-fb:96 nack",
    "a=rtpmap:97 rtx/90000", "a=fmtp:97 apt=96", ""])
AIORTC_ANSWER = "\r\n".join([
    "v=0", "o=- 2 2 IN IP4 0.0.0.0", "s=-", "t=0 0", "a=group:BUNDLE 0 1",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111", "c=IN IP4 0.0.0.0", "a=recvonly",
    "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid", "a=extmap:14 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    "a=mid:0", "a=rtpmap:111 opus/48000/2",
    "m=video 9 UDP/TLS/RTP/SAVPF 96 97", "c=IN IP4 0.0.0.0", "a=recvonly",
    "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid", "a=mid:1", "a=rtpmap:96 VP8/90000",
    "a=rtcp-fb:96 nack", "a=rtpmap:97 rtx/90000", "a=fmtp:97 apt=96", ""])


def test_the_publishers_answer_keeps_what_we_understand_with_its_ids() -> None:
    answer = ext.complete_answer(AIORTC_ANSWER, OFFER)
    maps = ext.section_maps(answer)
    assert maps["0"] == {ext.MID: 4, ext.AUDIO_LEVEL: 14, ext.TRANSPORT_CC: 6}
    assert maps["1"] == {ext.MID: 4, ext.TRANSPORT_CC: 6, ext.RID: 10, ext.REPAIRED_RID: 11,
                         ext.VIDEO_ORIENTATION: 13}
    assert "urn:example:unknown" not in answer
    assert "a=rtcp-fb:111 transport-cc" in answer and "a=rtcp-fb:96 transport-cc" in answer
    assert "a=rtcp-fb:97 transport-cc" not in answer
    assert ext.complete_answer(answer, OFFER) == answer  # idempotent


def test_the_viewers_offer_adds_ours_at_free_ids_stable_across_renegotiations() -> None:
    aiortc_offer = AIORTC_ANSWER.replace("a=recvonly", "a=sendonly")
    offer, ids = ext.complete_offer(aiortc_offer, {})
    assert ids[ext.MID] == 4 and ids[ext.AUDIO_LEVEL] == 14  # what was there stays
    assert len(set(ids.values())) == len(ids) and all(1 <= i <= 14 for i in ids.values())
    maps = ext.section_maps(offer)
    assert set(maps["0"]) == set(ext.TO_VIEWERS["audio"]) and set(maps["1"]) == set(ext.TO_VIEWERS["video"])
    assert all(maps[m][u] == ids[u] for m in maps for u in maps[m])
    again, ids2 = ext.complete_offer(aiortc_offer, ids)
    assert ids2 == ids and again == offer
    assert "a=rtcp-fb:96 transport-cc" in offer and "a=rtcp-fb:97 transport-cc" not in offer


def packet(elements: list[tuple[int, bytes]], payload: bytes = b"\x10\x00\x9d\x01\x2a", seq: int = 100,
           two_byte: bool = False) -> bytes:
    if two_byte:
        block = b"".join(bytes([i, len(v)]) + v for i, v in elements)
        profile = b"\x10\x00"
    else:
        block = b"".join(bytes([(i << 4) | (len(v) - 1)]) + v for i, v in elements)
        profile = b"\xbe\xde"
    block += bytes(-len(block) % 4)
    return (bytes([0x90, 96]) + seq.to_bytes(2, "big") + (9000).to_bytes(4, "big") + (1234).to_bytes(4, "big")
            + profile + (len(block) // 4).to_bytes(2, "big") + block + payload)


def test_elements_in_both_forms() -> None:
    els = [(4, b"1"), (13, b"\x01"), (6, b"\x00\x07")]
    assert ext.elements(packet(els)) == dict(els)
    assert ext.elements(packet(els, two_byte=True)) == dict(els)


@given(st.binary(min_size=12, max_size=80))
def test_elements_never_raise(data: bytes) -> None:
    data = bytes([data[0] | 0x90]) + data[1:]
    found = ext.elements(data)
    assert all(1 <= k <= 255 for k in found)


class Wire:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.addr = None

    def protect(self, p: bytes) -> bytes:
        return p

    def sendto(self, data: bytes, addr: object) -> None:
        self.sent.append(data)

    def send_rtp(self, p: bytes) -> bool:
        self.sent.append(p)
        return True


def test_recorded_packets_through_a_consumer_get_the_viewers_ids() -> None:
    publisher = {ext.MID: 4, ext.AUDIO_LEVEL: 14, ext.TRANSPORT_CC: 6, ext.VIDEO_ORIENTATION: 13}
    viewer = {ext.MID: 1, ext.ABS_SEND_TIME: 3, ext.TRANSPORT_CC: 5, ext.VIDEO_ORIENTATION: 7}
    producer = Producer("p", PeerId("pub"), Codec("video", "video/VP8", 90000, 96), 1234,
                        KeyframeRequester(lambda: None, 1.0, lambda d, f: None))  # type: ignore[arg-type, return-value]
    producer.ext_in = ext.Inbound.of(publisher)
    departures = Departures()
    wires = [Wire(), Wire()]
    consumers = [Consumer(f"c{i}", producer, wires[i], 5000 + i, 100, 0, None, False,  # type: ignore[arg-type]
                          ext.Outbound.of(viewer, str(i)), departures) for i in range(2)]
    for c in consumers:
        producer.add_consumer(c)
    for n in range(3):
        producer.on_rtp(packet([(4, b"0"), (14, b"\x85"), (6, n.to_bytes(2, "big")), (13, b"\x02")], seq=100 + n))
    numbers = []
    for i, wire in enumerate(wires):
        assert len(wire.sent) == 3
        for p in wire.sent:
            got = ext.elements(p)
            assert set(got) == {1, 3, 5, 7}
            assert got[1] == str(i).encode() and got[7] == b"\x02" and len(got[3]) == 3
            numbers.append(int.from_bytes(got[5], "big"))
            assert p[payload_offset(p):] == b"\x10\x00\x9d\x01\x2a"
    assert sorted(numbers) == list(range(1, 7))  # one sequence for the transport, not the publisher's
    consumers[0].on_nack([(100 + consumers[0].seq_off) & 0xFFFF])  # a retransmission is numbered too,
    got = ext.elements(wires[0].sent[-1])  # and stamped with abs-send-time (a REMB viewer's estimator reads it)
    assert set(got) == {3, 5} and got[5] == (7).to_bytes(2, "big") and len(got[3]) == 3
    assert departures.seq == 7
