"""Simulcast through pipes: every layer of a track is piped, and the importing end rebuilds the track
(its exposed layer the exporting side's, its layers in rank order) whatever order the descriptors
come in; a layer removed on the exporting side leaves the track on the importing side. Only the layers
something on the importing side consumes cross (sfu/pipe_demand.py)."""

from __future__ import annotations

import asyncio

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from sfu.pipe import PipeTransport
from sfu.pipe_demand import LINGER_S, Demand
from sfu.pipe_descriptor import describe, is_exposed, track_of
from sfu.pipe_seal import Seal
from sfu.producer import Codec, KeyframeRequester, Producer
from sfu.rtp import HEADER
from sfu.simulcast import SimulcastTrack
from sfu.types import PeerId

FANOUT_PATHS = ()
"""No Worker or WorkerPool here: the fan-out setting does not reach these tests; one run (tests/conftest.py)."""

VP8 = Codec("video", "video/VP8", 90000, 96)
OPUS = Codec("audio", "audio/opus", 48000, 111, 2)


def producer(producer_id: str, ssrc: int, codec: Codec = VP8) -> Producer:
    return Producer(producer_id, PeerId("pub"), codec, ssrc, KeyframeRequester(lambda: None, 0.5, lambda *a: None))


def published_track(first: int = 1) -> tuple[SimulcastTrack, list[Producer]]:
    """A publisher's three layers, learnt in the order their first packets came: ``first`` (the
    exposed one), then the others; returned lowest first."""
    layers = [producer(f"p{i + 10}", 0x1000 + i) for i in range(3)]
    track = SimulcastTrack([])
    for i in [first] + [i for i in range(3) if i != first]:
        layers[i].simulcast = track
        track.insert(layers[i], i)
    return track, layers


class Importer:
    """An importing pipe end whose piped producers are real producers, recorded as they come and go."""

    def __init__(self) -> None:
        self.added: list[Producer] = []
        self.closed: list[Producer] = []
        self.pipe = PipeTransport("pipe-1", new_producer=lambda t, codec, ssrc, pid: producer(pid, ssrc, codec),
                                  on_producer=lambda t, p: self.added.append(p),
                                  on_producer_closed=lambda t, p: self.closed.append(p))


def bare_pipe(pipe_id: str, seal: Seal | None = None) -> PipeTransport:
    """A pipe end whose importing side makes nothing (an exporting end, or one only counted)."""
    return PipeTransport(pipe_id, new_producer=lambda *a: None,  # type: ignore[arg-type,return-value]
                         on_producer=lambda t, p: None, on_producer_closed=lambda t, p: None, seal=seal)


async def connected_pair() -> tuple[PipeTransport, Importer]:
    """An exporting end and an importing end over real UDP on 127.0.0.1."""
    exporter, importer = bare_pipe("pipe-1"), Importer()
    export_port, import_port = await exporter.open(), await importer.pipe.open()
    exporter.connect(import_port, export=True)
    importer.pipe.connect(export_port, export=False)
    return exporter, importer


def test_a_layer_descriptor_names_its_track_and_rank_and_a_plain_one_stays_nine_fields() -> None:
    track, layers = published_track(first=1)
    d = describe(layers[2])
    assert d[:9] == ["p12", "pub", "video", "video/VP8", 90000, 96, None, [], 0x1002]
    assert track_of(d) == ("p11", 2) and not is_exposed(d)
    assert track_of(describe(layers[1])) == ("p11", 1) and is_exposed(describe(layers[1]))
    plain = describe(producer("a1", 0x2000, OPUS))
    assert len(plain) == 9 and track_of(plain) is None and is_exposed(plain)
    assert track is layers[0].simulcast


@settings(max_examples=60)
@given(st.permutations(range(4)), st.integers(0, 2))
def test_the_importing_end_rebuilds_the_track_whatever_the_order(order: list[int], first: int) -> None:
    _, layers = published_track(first)
    audio = producer("a1", 0x2000, OPUS)
    sent = [describe(p) for p in [*layers, audio]]
    descriptors = msgpack.unpackb(msgpack.packb([sent[i] for i in order]))  # as a control datagram carries them
    importer = Importer()
    importer.pipe.sync(descriptors)
    assert len(importer.added) == 4 and importer.closed == []
    (piped,) = importer.pipe.tracks.values()
    assert [p.ssrc for p in piped.layers] == [0x1000, 0x1001, 0x1002] and piped.order == [0, 1, 2]
    assert piped.exposed is importer.pipe.producers[0x1000 + first]
    assert piped.exposed.producer_id == f"p{10 + first}"
    assert importer.pipe.producers[0x2000].simulcast is None
    assert all(importer.pipe.producers[0x1000 + i].simulcast is piped for i in range(3))
    # the exposed layer reaches the router before the other layers of its track
    seen = [p for p in importer.added if p.simulcast is piped]
    assert seen[0] is piped.exposed
    importer.pipe.sync(descriptors)  # the same list again (every tick): nothing changes
    assert len(importer.added) == 4 and importer.closed == []


def test_a_layer_removed_leaves_the_track_and_the_exposed_one_removed_takes_the_track() -> None:
    _, layers = published_track(first=0)
    importer = Importer()
    importer.pipe.sync([describe(p) for p in layers])
    (piped,) = importer.pipe.tracks.values()
    top = importer.pipe.producers[0x1002]
    importer.pipe.sync([describe(p) for p in layers[:2]])
    assert importer.closed == [top] and [p.ssrc for p in piped.layers] == [0x1000, 0x1001]
    assert piped.order == [0, 1] and len(piped.bitrates) == len(piped.meters) == 2
    importer.pipe.sync([describe(p) for p in layers])  # it comes back (a new producer for it)
    assert [p.ssrc for p in piped.layers] == [0x1000, 0x1001, 0x1002] and importer.pipe.producers[0x1002] is not top
    # the exposed layer gone: every layer goes, the exposed one first
    importer.pipe.sync([describe(p) for p in layers[1:]])
    assert [p.ssrc for p in importer.closed[1:]] in ([0x1000, 0x1001, 0x1002], [0x1000, 0x1002, 0x1001])
    assert importer.pipe.producers == {} and importer.pipe.tracks == {}


def test_a_layer_whose_exposed_layer_is_not_piped_waits_for_it() -> None:
    _, layers = published_track(first=1)
    importer = Importer()
    importer.pipe.sync([describe(layers[0]), describe(layers[2])])
    assert importer.added == [] and importer.pipe.tracks == {}
    importer.pipe.sync([describe(p) for p in layers])
    assert len(importer.added) == 3 and importer.added[0].producer_id == "p11"


async def test_every_layer_crosses_a_real_pipe_and_a_closed_layer_leaves_the_far_track() -> None:
    track, layers = published_track(first=2)
    exporter, importer = await connected_pair()
    try:
        for p in track.layers:
            exporter.export(p)
        await until(lambda: len(importer.added) == 3)
        (piped,) = importer.pipe.tracks.values()
        assert piped.exposed is not None and piped.exposed.ssrc == 0x1002
        assert [p.ssrc for p in piped.layers] == [0x1000, 0x1001, 0x1002]
        exporter.exported[0x1001].close()  # its producer closed on the exporting side
        await until(lambda: len(importer.closed) == 1)
        assert importer.closed[0].ssrc == 0x1001 and [p.ssrc for p in piped.layers] == [0x1000, 0x1002]
    finally:
        exporter.close()
        importer.pipe.close()
    assert layers[0].closed is False  # closing a pipe never closes the exporting side's producers


async def until(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]  # noqa: ASYNC109
    async def loop() -> None:
        while not predicate():  # noqa: ASYNC110 (waits for a datagram)
            await asyncio.sleep(0.02)
    await asyncio.wait_for(loop(), timeout)


KEY = bytes([0x10, 0x00, 0x00, 0x00]) + b"k" * 40
"""A VP8 payload starting a key frame (S bit, partition 0, P bit clear)."""


def rtp(ssrc: int, seq: int, payload: bytes = KEY) -> bytes:
    return HEADER.pack(0x80, 0x80 | 96, seq, seq * 3000, ssrc) + payload


def test_a_layer_is_wanted_while_consumed_and_for_the_linger_after() -> None:
    _, layers = published_track(first=0)
    importer = Importer()
    importer.pipe.sync([describe(p) for p in layers])
    piped = {p.ssrc: p for p in importer.added}
    demand = Demand()
    assert demand.wanted(piped, 100.0) == set()
    onward = bare_pipe("pipe-2")
    onward.export(piped[0x1001])  # a pipe onward (the cascade) consumes the middle layer
    assert demand.wanted(piped, 101.0) == {0x1001}
    onward.exported[0x1001].close()
    assert demand.wanted(piped, 101.0 + LINGER_S - 0.5) == {0x1001}  # still crossing: the linger
    assert demand.wanted(piped, 101.0 + LINGER_S + 0.5) == set()
    assert demand.touch(0x1002, 200.0) is False  # nothing told yet: every layer still crosses
    assert demand.newly({0x1002}, piped) == set() and demand.told == {0x1002}
    assert demand.touch(0x1000, 201.0) is True and demand.wanted(piped, 201.0) == {0x1000, 0x1002}


async def test_only_the_wanted_layers_cross_a_real_pipe() -> None:
    track, layers = published_track(first=0)
    exporter, importer = await connected_pair()
    onward = bare_pipe("pipe-2")
    try:
        for p in track.layers:
            exporter.export(p)
        assert exporter.layers() == (3, 0)  # nothing heard from the far end yet: every layer crosses
        await until(lambda: len(importer.added) == 3)
        importer.pipe.tick()  # nobody uses any layer there
        await until(lambda: exporter.layers() == (0, 3))
        far = importer.pipe.producers
        seq = 1
        for p in layers:
            p.on_rtp(rtp(p.ssrc, seq))
        await asyncio.sleep(0.2)
        assert [far[p.ssrc].packets_received for p in layers] == [0, 0, 0]
        # a consumer on the far side's top layer asks for its keyframe: the layer is wanted first
        onward.export(far[0x1002])
        importer.pipe.send_pli(far[0x1002])  # what its keyframe requester does (sfu.router)
        await until(lambda: exporter.layers() == (1, 2))
        for seq in (2, 3):
            for p in layers:
                p.on_rtp(rtp(p.ssrc, seq))
        await until(lambda: far[0x1002].packets_received == 2)
        assert [far[p.ssrc].packets_received for p in layers[:2]] == [0, 0]
        assert layers[2].keyframes.requested == 1  # the PLI crossed back after the want
        assert track_of(describe(layers[2])) == ("p10", 2) and len(describe(layers[2])) == 12
    finally:
        exporter.close()
        importer.pipe.close()


async def test_held_layers_leave_the_pipe_with_their_publisher() -> None:
    """A layer nobody on the far side uses is held, not dropped: when its publisher goes, it leaves the
    pipe like a crossing one (the far side's track goes; a later producer may reuse its SSRC)."""
    track, layers = published_track(first=0)
    exporter = bare_pipe("pipe-1")
    for p in track.layers:
        exporter.export(p)
    exporter.want({0x1002})
    assert exporter.layers() == (1, 2) and layers[0].parked == [exporter.exported[0x1000]]
    for p in layers:  # the publisher left: what the router does (sfu/router.py close_peer)
        for c in p.close():
            c.close()
    assert exporter.exported == {} and exporter.descriptors() == [] and exporter.layers() == (0, 0)
    again = producer("p20", 0x1000)
    exporter.export(again)
    assert list(exporter.exported) == [0x1000] and exporter.exported[0x1000].producer is again
    exporter.close()


def test_a_track_from_an_older_node_without_rates_is_measured_here() -> None:
    """Eleven-field descriptors (a node before the rates travelled): the layers' rates are this side's
    own measurement, never 0 for every layer (with which every layer fits any estimate)."""
    _, layers = published_track(first=0)
    importer = Importer()
    importer.pipe.sync([describe(p)[:11] for p in layers])
    (piped,) = importer.pipe.tracks.values()
    assert piped.measured is None
    far = importer.pipe.producers
    piped.tick(0.0)
    for seq in range(1, 11):
        far[0x1002].on_rtp(rtp(0x1002, seq, KEY + bytes(1000)))
    piped.tick(1.0)
    assert piped.bitrates[2] > 0 and piped.bitrates[0] == 0
    newer = Importer()
    sent = [describe(p) for p in layers]
    sent[1][11] = float("inf")  # a rate that is no number: this layer measured here, the others as told
    sent[2][11] = 1_500_000
    newer.pipe.sync(msgpack.unpackb(msgpack.packb(sent)))
    (told,) = newer.pipe.tracks.values()
    told.tick(0.0)
    assert told.bitrates == [0, 0, 1_500_000]


async def test_an_older_wants_list_arriving_late_changes_nothing_and_garbage_is_counted() -> None:
    """Sealed datagrams may arrive out of order (the replay window takes a late one once): a wants list
    older than the one applied must not stop the layer a far viewer is on."""
    track, _ = published_track(first=0)
    secret = Seal(b"s" * 32)
    exporter = bare_pipe("pipe-1", seal=secret)
    await exporter.open()
    exporter.connect(9, export=True)  # sends go nowhere: the test hands the datagrams in itself
    for p in track.layers:
        exporter.export(p)
    sealer = secret.for_pipe("pipe-1")
    far = ("127.0.0.1", 9)

    def wants(counter: int, ssrcs: list[object]) -> None:
        exporter.datagram_received(sealer.seal(bytes([0]) + msgpack.packb(ssrcs), counter), far)

    try:
        wants(5, [0x1002])
        assert exporter.layers() == (1, 2) and exporter.exported[0x1002].flowing
        wants(3, [0x1000])  # sent before, arrives after
        assert exporter.exported[0x1002].flowing and not exporter.exported[0x1000].flowing
        wants(6, [float("inf")])  # sealed by a peer holding the secret, and still no number
        assert exporter.malformed == 1 and exporter.exported[0x1002].flowing
        wants(7, [0x1000])
        assert exporter.exported[0x1000].flowing and not exporter.exported[0x1002].flowing
    finally:
        exporter.close()


def test_a_far_viewer_waiting_for_a_keyframe_asks_again_each_tick_and_a_tap_never_does() -> None:
    """A lost want or PLI must not leave a far viewer black until the scheduled keyframe: the importing
    end's tick asks again for every layer a viewer waits on; a hidden tap waits for the schedule."""
    from tests.sfu.test_joins import Recorder

    _, layers = published_track(first=0)
    importer = Importer()
    importer.pipe.sync([describe(p) for p in layers])
    far = importer.pipe.producers
    viewer, tap = Recorder(), Recorder()
    tap.hidden = True
    far[0x1002].waiting.append(viewer)  # type: ignore[arg-type]
    far[0x1001].waiting.append(tap)  # type: ignore[arg-type]
    importer.pipe.tick()
    assert far[0x1002].keyframes.requested == 1 and far[0x1001].keyframes.requested == 0
    importer.pipe.tick()
    assert far[0x1002].keyframes.requested == 2
