"""Pipes between the workers of one node (mediasoup's pipeToRouter): plain RTP over UDP on 127.0.0.1.

A show whose audience outgrows its worker gets a second router on another worker; a pipe joins the
two. The exporting side (the router holding the publisher) adds a :class:`PipeConsumer` to each of
its producers: packets go out unchanged (original SSRC, payload type, sequence number, timestamp),
with no SRTP, one copy per producer instead of one per viewer. The importing side creates one
producer per piped track (same id, codec and SSRC), with its own NACK cache, so its viewers' NACKs
are answered there; their PLIs are merged by that producer and sent back through the pipe as RTCP,
where they become keyframe requests on the real producer (merged again, then upstream).

A simulcast track is described whole: every layer's descriptor names the track (the id of its
exposed layer on the exporting side), the layer's rank and its bitrate as the exporting side measures
it. The importing end builds one :class:`SimulcastTrack` per track from them, so the viewers there get
the same per-viewer layer choice (on those bitrates); a switch's keyframe request goes back as a PLI
on that layer's SSRC. Only the layers the importing side uses cross (:mod:`sfu.pipe_demand`).

Both ends are created by their routers and closed by them. The set of piped producers travels in
control datagrams (first byte 0, then msgpack) sent on every change and every tick; RTP and RTCP
(RFC 5761 demux on the payload type byte) travel as they are. Garbage is counted and dropped.

Between nodes (the cascade, docs/scaling.md) a pipe binds and sends on the nodes' pipe addresses and
is sealed (:mod:`sfu.pipe_seal`): datagrams without the shared secret's tag are dropped and counted in
``forged``, whatever address they come from (a sealed pipe takes its far end's datagrams from any
address: the seal, not the address, says who sent them, so a NAT between the nodes changes nothing).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any

import msgpack

from sfu import aiortc_private, rtcp
from sfu.pipe_demand import Demand, restart
from sfu.pipe_descriptor import Descriptor, codec_of, describe, is_exposed, track_of
from sfu.pipe_seal import FROM_EXPORTER, ReplayWindow, Seal
from sfu.producer import Codec, Producer
from sfu.rtp import HEADER
from sfu.simulcast import SimulcastTrack

HOST = "127.0.0.1"
CONTROL = 0
"""First byte of a control datagram (RTP and RTCP start with version 2: 0x80..0xBF)."""

class PipeConsumer:
    """A producer's packets into a pipe, unchanged. Owned by its pipe; never a participant (``hidden``)."""

    hidden = True
    """Not a viewer: never counted in room stats."""
    relay = True
    """Another router's viewers wait for this copy: it leaves before any viewer's (``Producer.active``)."""

    def __init__(self, producer: Producer, pipe: PipeTransport) -> None:
        self.producer = producer
        self.pipe = pipe
        self.first_byte = 0x80
        self.pt = producer.codec.payload_type
        self.ssrc = producer.ssrc
        self.packets = 0
        self.started = False
        self.flowing = False
        """On the producer's consumers (a simulcast layer the far side does not use is not)."""
        self.closed = False

    def flow(self, on: bool) -> None:
        """Cross (from the layer's next keyframe) or stop crossing (parked on the producer, which
        closes it with itself); asks the publisher for nothing."""
        producer = self.producer
        if on == self.flowing or self.closed or producer.closed:
            return
        self.flowing = on
        producer.remove_consumer(self)
        if on:
            producer.add_consumer(self)
        else:
            producer.parked.append(self)

    def start(self, seq: int, ts: int) -> None:
        self.started = True

    def forward(self, seq: int, ts: int, marker: int, payload: bytes) -> None:
        self.pipe.sendto(HEADER.pack(0x80, marker | self.pt, seq, ts, self.ssrc) + payload)
        self.packets += 1

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.producer.remove_consumer(self)
        self.pipe.exported.pop(self.ssrc, None)
        self.pipe.announce()


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, pipe: PipeTransport) -> None:
        self.pipe = pipe

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.pipe.datagram_received(data, addr)

    def error_received(self, exc: Exception) -> None:  # the far worker went away: ICMP unreachable
        self.pipe.send_errors += 1


class PipeTransport:
    """One end of a pipe between two routers of the same room on two workers."""

    def __init__(self, pipe_id: str, *, new_producer: Callable[[PipeTransport, Codec, int, str], Producer],
                 on_producer: Callable[[PipeTransport, Producer], None],
                 on_producer_closed: Callable[[PipeTransport, Producer], None], seal: Seal | None = None,
                 host: str = HOST) -> None:
        self.pipe_id = pipe_id
        self._seal = seal.for_pipe(pipe_id) if seal is not None else None
        """Between nodes: every datagram is sealed with the shared secret; None between workers."""
        self._sent = 0
        """Sealed datagrams sent (each one's counter)."""
        self._window = ReplayWindow()
        """The far end's counters already opened: a replayed datagram is dropped."""
        self._host = host
        self.rtcp_ssrc = 0x5C000000 | (hash(pipe_id) & 0xFFFFFF)
        self._new_producer = new_producer
        self._on_producer = on_producer
        self._on_producer_closed = on_producer_closed
        self.exported: dict[int, PipeConsumer] = {}
        """Exporting end: our producers' pipe consumers, by SSRC."""
        self.producers: dict[int, Producer] = {}
        """Importing end: the piped producers, by SSRC."""
        self.tracks: dict[str, SimulcastTrack] = {}
        """Importing end: the piped simulcast tracks, by track id (the exporting end's exposed layer's id)."""
        self.rates: dict[int, float] = {}
        """Importing end: each simulcast layer's bitrate as the exporting end measured it, by SSRC."""
        self.demand = Demand()
        """Importing end: the simulcast layers its consumers use (only those cross)."""
        self.wanted: set[int] | None = None
        self._wants_order = 0
        """Exporting end of a sealed pipe: the counter of the wants list applied last."""
        """Exporting end: the simulcast layers the importing end wants; None before it said (all cross)."""
        self.exporting = False
        self.remote: tuple[str, int] | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self.sendto: Callable[[bytes], None] = _discard
        self.malformed = 0
        self.unknown_ssrc = 0
        self.send_errors = 0
        self.forged = 0
        """Sealed pipes: datagrams dropped for a missing or wrong tag (a stranger's, or altered), or
        replayed (a genuine one sent again, or ours reflected back: also counted in ``replayed``)."""
        self.replayed = 0
        self.heard = time.monotonic()
        """When the far end was last heard (any genuine datagram; the importing end sends a keepalive
        every tick): a pipe between nodes silent for long has lost its far node."""
        self.closed = False

    @property
    def sealed(self) -> bool:
        return self._seal is not None

    async def open(self) -> int:
        """Bind a UDP socket on the pipe's host (127.0.0.1 between workers); returns its port."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self), local_addr=(self._host, 0))
        self._transport = transport
        aiortc_private.enlarge_receive_buffer(transport)
        return int(transport.get_extra_info("sockname")[1])

    def connect(self, port: int, *, export: bool, host: str = HOST) -> None:
        """Send to the far end's port (on ``host``: another node's address for a pipe between nodes);
        the exporting end sends media, the importing end feedback."""
        assert self._transport is not None
        self.remote = (host, port)
        self.exporting = export
        send, remote, seal = self._transport.sendto, self.remote, self._seal
        if seal is None:
            self.sendto = lambda data: send(data, remote)
            return
        mark = FROM_EXPORTER if export else 0

        def sealed(data: bytes) -> None:
            self._sent += 1
            send(seal.seal(data, mark | self._sent), remote)

        self.sendto = sealed

    # exporting end ------------------------------------------------------------------------------

    def export(self, producer: Producer) -> None:
        if producer.ssrc in self.exported or producer.closed or self.closed:
            return
        consumer = PipeConsumer(producer, self)
        self.exported[producer.ssrc] = consumer
        consumer.flow(self.wanted is None or producer.simulcast is None or producer.ssrc in self.wanted)
        self.announce()

    def want(self, ssrcs: set[int]) -> None:
        """The importing end's list: its simulcast layers cross, the others stop (tracks sent alone always cross)."""
        self.wanted = ssrcs
        for c in self.exported.values():
            c.flow(c.producer.simulcast is None or c.ssrc in ssrcs)

    def layers(self) -> tuple[int, int]:
        """Exporting end: simulcast layers (crossing, held: described but nobody on the far side uses them)."""
        layers = [c.flowing for c in self.exported.values() if c.producer.simulcast is not None]
        return sum(layers), len(layers) - sum(layers)

    def descriptors(self) -> list[Descriptor]:
        return [describe(c.producer) for c in self.exported.values()]

    def announce(self) -> None:
        if self.exporting and not self.closed:
            self.sendto(bytes([CONTROL]) + msgpack.packb(self.descriptors()))

    # importing end ------------------------------------------------------------------------------

    def sync(self, descriptors: list[Descriptor]) -> None:
        """Make our piped producers match the exporting end's list (new ones added, gone ones closed).
        Simulcast layers join their track (its exposed layer first, whatever the list's order); a layer
        whose track's exposed layer is not in the list waits for it."""
        shown = {str(d[0]) for d in descriptors if track_of(d) is not None and is_exposed(d)}
        self.rates = {int(d[8]): r for d in descriptors if len(d) >= 12 and math.isfinite(r := float(d[11])) and r >= 0}
        wanted = {int(d[8]): d for d in descriptors if (t := track_of(d)) is None or t[0] in shown}
        gone = [s for s in self.producers if s not in wanted]
        for ssrc in sorted(gone, key=lambda s: self._layer_rank(self.producers[s])):
            producer = self.producers.pop(ssrc)
            if producer.simulcast is not None:
                producer.simulcast.drop_layer(producer)
            self._on_producer_closed(self, producer)
        self.tracks = {k: t for k, t in self.tracks.items()
                       if t.exposed is not None and self.producers.get(t.exposed.ssrc) is t.exposed}
        for ssrc, d in sorted(wanted.items(), key=lambda kv: not is_exposed(kv[1])):
            if ssrc in self.producers:
                continue
            track = track_of(d)
            layer_of = self.tracks.get(track[0]) if track is not None and not is_exposed(d) else None
            if track is not None and not is_exposed(d) and layer_of is None:
                continue  # its exposed layer came as a track sent alone: nothing to join
            producer = self._new_producer(self, codec_of(d), ssrc, str(d[0]))
            producer.peer_id = d[1]
            if track is not None:
                if layer_of is None:
                    layer_of = self.tracks[track[0]] = SimulcastTrack([])
                    if len(d) >= 12:  # the exporting end measures (an older node's descriptors do not say)
                        layer_of.measured = self._rate_of
                producer.simulcast = layer_of
                layer_of.insert(producer, track[1])
            self.producers[ssrc] = producer
            self._on_producer(self, producer)

    @staticmethod
    def _layer_rank(producer: Producer) -> int:
        """Closing order: a track's exposed layer first (its viewers go), then its other layers."""
        track = producer.simulcast
        return 0 if track is None or track.exposed is producer else 1

    def _rate_of(self, producer: Producer) -> float | None:
        return self.rates.get(producer.ssrc)

    def send_pli(self, producer: Producer) -> None:
        """Ask for a keyframe on a piped producer; a layer not crossing yet is asked for first."""
        if producer.simulcast is not None and self.demand.touch(producer.ssrc, time.monotonic()):
            self.tell_wants()
        self.sendto(rtcp.build_pli(self.rtcp_ssrc, producer.ssrc))

    def tell_wants(self) -> None:
        """Importing end: send the exporting end the simulcast layers we use; a layer starting again
        starts its numbering afresh."""
        if self.exporting or self.closed or self.remote is None:
            return
        wants = self.demand.wanted(self.producers, time.monotonic())
        for ssrc in self.demand.newly(wants, self.producers):
            restart(self.producers[ssrc])
        self.sendto(bytes([CONTROL]) + msgpack.packb(sorted(wants)))

    # both ---------------------------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: Any) -> None:
        order = 0  # a sealed datagram's counter (the far end's send order); 0 between workers (loopback keeps order)
        if self._seal is not None:
            opened = self._seal.open(data)
            if opened is None:
                self.forged += 1
                return
            data, counter = opened
            if self.closed or self.remote is None:
                self.malformed += 1
                return
            if bool(counter & FROM_EXPORTER) == self.exporting or not self._window.accept(counter & ~FROM_EXPORTER):
                self.forged += 1
                self.replayed += 1
                return
            order = counter & ~FROM_EXPORTER
        elif self.closed or addr != self.remote:
            self.malformed += 1
            return
        n = len(data)
        self.heard = time.monotonic()
        if n and data[0] == CONTROL and self.exporting:  # the importing end's wants (alone: a keepalive)
            if n > 1 and order >= self._wants_order:  # an older list arriving late changes nothing
                self._wants_order = order
                try:
                    self.want({int(s) for s in msgpack.unpackb(data[1:])})
                except (ValueError, TypeError, ArithmeticError, msgpack.UnpackException):
                    self.malformed += 1
            return
        if n and data[0] == CONTROL:
            try:
                descriptors = msgpack.unpackb(data[1:])
                self.sync(descriptors)
            except (ValueError, TypeError, IndexError, KeyError, ArithmeticError, msgpack.UnpackException):
                self.malformed += 1
            return
        if n < 12 or data[0] >> 6 != 2:
            self.malformed += 1
            return
        if 192 <= data[1] <= 223:
            self.on_rtcp(data)
            return
        producer = self.producers.get(int.from_bytes(data[8:12], "big"))
        if producer is None:
            self.unknown_ssrc += 1
            return
        producer.on_rtp(data)

    def on_rtcp(self, data: bytes) -> None:
        try:
            for pt, fmt, body in rtcp.split(data):
                if pt == rtcp.PSFB and fmt in (rtcp.FMT_PLI, rtcp.FMT_FIR):
                    consumer = self.exported.get(rtcp.feedback_ssrcs(body)[1])
                    if consumer is not None:
                        consumer.producer.keyframes.request()
                elif pt == rtcp.SR:
                    ssrc, ntp, rtp_ts = rtcp.sr_info(body)
                    producer = self.producers.get(ssrc)
                    if producer is not None:
                        producer.on_sender_report(ntp, rtp_ts)
        except ValueError:
            self.malformed += 1

    def tick(self) -> None:
        """Once a second: re-announce the producer list and pass the publishers' clocks (for SRs); the
        importing end of a sealed pipe says it is alive."""
        if self.closed:
            return
        if not self.exporting:  # our wants, every tick (also the keepalive of a sealed pipe)
            self.tell_wants()
            for p in self.producers.values():  # viewers ask again (a lost want or PLI); taps wait for the schedule
                if p.is_keyframe is not None and any(not c.hidden for c in p.waiting):
                    p.keyframes.request()
            return
        self.announce()
        parts = []
        for c in self.exported.values():
            clock = c.producer.rtp_clock_now()
            if clock is not None:
                parts.append(rtcp.build_sr(c.ssrc, clock[0], clock[1], 0, 0))
        if parts:
            self.sendto(b"".join(parts))

    def close(self) -> list[Producer]:
        """Close the socket and our pipe consumers; returns the imported producers the router must close."""
        if self.closed:
            return []
        self.closed = True
        for c in list(self.exported.values()):
            c.close()
        self.exported.clear()
        producers = sorted(self.producers.values(), key=self._layer_rank)
        self.producers.clear()
        self.tracks.clear()
        self.sendto = _discard
        if self._transport is not None:
            self._transport.close()
        return producers


def _discard(data: bytes) -> None:
    return None
