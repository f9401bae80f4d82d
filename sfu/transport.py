"""Transport: one peer connection (aiortc negotiates ICE/DTLS/SRTP; we carry the media).

A publisher transport owns its tracks' producers; a subscriber's, one consumer per producer of the
room (one held for its track to come back: ``sfu.orphans``). RTP/RTCP arrive decrypted through
``sfu.aiortc_private``; header extensions are negotiated in the SDP (``sfu.extensions``); transport-cc
feedback to a publisher is ``sfu.twcc``, a viewer's feeds its estimate (``sfu.bwe``)."""

from __future__ import annotations

import enum
import logging
import random
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.exceptions import InvalidStateError
from aiortc.rtcrtpparameters import RTCRtpReceiveParameters, RTCRtpSendParameters
from aiortc.sdp import candidate_from_sdp

from sfu import aiortc_private as private
from sfu import extensions, fanout, rtcp, simulcast_in, twcc
from sfu.bwe import LinkEstimate
from sfu.consumer import Consumer
from sfu.errors import Faults, NegotiationError
from sfu.negotiation import DtlsCertificate, announce, codec_of, offered_setup, preferences_for
from sfu.producer import Codec, Producer
from sfu.rtp import HEADER, payload_end, payload_offset
from sfu.simulcast import SimulcastTrack
from sfu.transport_probe import TransportProbing
from sfu.transport_rtcp import TransportRtcp
from sfu.types import IceCandidate, PeerId
from switchboard.ids import UserId

log = logging.getLogger(__name__)

FEEDBACK_INTERVAL_US = 100_000
"""Transport-cc feedback to a publisher at most this often (mediasoup: 100 ms; libwebrtc 50-250 ms)."""


class Role(enum.StrEnum):
    PUBLISHER = "publisher"
    SUBSCRIBER = "subscriber"


class Transport:
    """One RTCPeerConnection. Created and closed by its router."""

    def __init__(self, peer_id: PeerId, user_id: UserId, role: Role, *, hidden: bool, addresses: tuple[str, ...],
                 announced: str, on_producer: Callable[[Transport, Producer], None],
                 new_producer: Callable[[Transport, Codec, int], Producer],
                 on_failed: Callable[[Transport, str], None], certificate: DtlsCertificate | None = None,
                 plane: fanout.Plane | None = None) -> None:
        self.peer_id = peer_id
        self.user_id = user_id
        self.on_first_media: Callable[[], None] | None = None
        """Set by the router: the first packet forwarded on any of this peer's consumers (each calls once)."""
        self.role = role
        self.hidden = hidden
        self.addresses = addresses
        self.announced = announced
        # max-bundle: every section on one transport from the start. With aiortc's default (balanced), a
        # subscriber offer of audio, video, audio, video (a 1:1 call's tap) left the 4th section on the
        # audio transport that the client's BUNDLE answer then stopped: that track never flowed.
        config = RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        self.pc = RTCPeerConnection(config) if certificate is None else \
            private.peer_connection(config, certificate.current())
        self.wire: private.WireSender | None = None
        self.plane = plane
        """The worker's native fan-out plane (None: the Python path)."""
        self.native: fanout.NativeWire | None = None
        """Subscriber on the native path: its libsrtp2 session and socket (every RTP packet to it)."""
        # Random, not a counter: a process-wide count would tell the next peer how many peers (taps
        # included) opened before it.
        self.rtcp_ssrc = random.getrandbits(32) | 1
        self.producers: dict[int, Producer] = {}
        self._rtx: dict[int, Producer] = {}
        """The publisher's RTX SSRCs (its retransmissions after our NACKs), to their producer."""
        self._pending_pt: dict[int, tuple[Codec, Any]] = {}
        self.demux = simulcast_in.LayerDemux()
        """Publisher: its simulcast sections, whose layers' SSRCs are learnt by ``rid``."""
        self.extension_ids: dict[str, dict[str, int]] = {}
        """mid -> (URI -> id) negotiated on this transport (publisher: its ids; subscriber: the answer's)."""
        self._offer_ids: dict[str, int] = {}
        """Subscriber: the ids our offers use (kept across renegotiations)."""
        self.feedback: twcc.FeedbackSender | None = None
        """Publisher that negotiated transport-cc: the feedback we send it."""
        self.link = LinkEstimate()
        """Subscriber: our transport-cc numbering toward it and the bandwidth estimate its feedback feeds."""
        self.consumers: dict[int, Consumer] = {}
        self._transceiver_producer: dict[int, Producer] = {}
        self._consumer_of: dict[int, Consumer] = {}
        self._on_producer = on_producer
        self._new_producer = new_producer
        self._hooked: set[int] = set()
        self.unknown_ssrc = 0
        self.probes = 0
        """Packets on the publisher's RTX stream that repair nothing: padding only, or a packet we have
        already (Chrome's bandwidth probes: payload padding resends recent packets)."""
        self.malformed_rtp = 0
        self.malformed_rtcp = 0
        self.rtcp_io = TransportRtcp(self)
        """What this transport reads and writes of RTCP (reports, feedback)."""
        self.probing = TransportProbing(self)
        """How this subscriber's link is probed for a higher layer (transport-cc clusters, REMB ramps)."""
        self.received = private.ReceiveDemux()
        """SRTP/SRTCP taken at the socket (the receive demux) rather than through aioice and aiortc."""
        self.faults = Faults(log, f"sfu peer {peer_id}")
        """Exceptions our receive path let out (a bug): counted, logged once per kind, the packet dropped."""
        self.needs_offer = False
        """Subscriber: the room changed while an offer was in the making or awaiting its answer."""
        self.offering = False
        """Subscriber: an offer is being made (between the first transceiver change and setLocalDescription)."""
        self.closed = False
        self.died: str | None = None
        """Why the connection died on its own (``ice-failed``, ``dtls-failed``, ``closed``), once it has."""

        @self.pc.on("connectionstatechange")
        def _state() -> None:
            if self.pc.connectionState in ("failed", "closed") and not self.closed and self.died is None:
                self.died = self.death_reason()
                on_failed(self, self.died)

    def death_reason(self) -> str:
        """Why the peer connection went ``failed`` or ``closed`` without us closing it. ``dtls-failed``: a
        DTLS handshake failed (bad fingerprint, no common cipher suite or SRTP profile); ``ice-failed``:
        connectivity checks or consent freshness failed; ``closed``: the DTLS transport ended (the client
        closed it, or its receive task stopped)."""
        dtls = {tr.sender.transport for tr in self.pc.getTransceivers()}
        if any(d.state == "failed" for d in dtls):
            return "dtls-failed"
        if any(d.transport.state == "failed" for d in dtls):
            return "ice-failed"
        return "closed"

    # negotiation -----------------------------------------------------------------------------

    def _prepare(self) -> None:
        for tr in self.pc.getTransceivers():
            dtls = tr.sender.transport
            if id(dtls) not in self._hooked:
                self._hooked.add(id(dtls))
                private.hook_dtls(dtls, self.on_rtp, self.on_rtcp, self.faults.caught, self.received)
        private.restrict_host_addresses(self.pc, self.addresses)

    def _ensure_wire(self, dtls: Any) -> private.WireSender:
        if self.wire is None:
            self.wire = private.WireSender(dtls)
        return self.wire

    async def answer_offer(self, offer_sdp: str) -> str:
        """Publisher: apply the client's offer, return our answer (recvonly, all candidates)."""
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            self.demux.layers = simulcast_in.offered_layers(offer_sdp)
            if not self.pc.getTransceivers():
                raise ValueError("no audio or video section")
            for tr in self.pc.getTransceivers():
                private.capture_receive(tr.receiver, partial(self._on_receive_params, tr))
            if offered_setup(offer_sdp) == "actpass":
                # Be the DTLS server: the client then needs no suite for our key type, so publishers with
                # RSA certificates (GStreamer) connect too; aiortc would answer ``active``.
                private.take_dtls_server_role(self.pc)
            self._prepare()
            await self.pc.setLocalDescription(await self.pc.createAnswer())
            answer = simulcast_in.accept_layers(extensions.complete_answer(self.pc.localDescription.sdp, offer_sdp),
                                                self.demux.layers)
        except (ValueError, AssertionError, KeyError, TypeError, StopIteration) as exc:
            raise NegotiationError(f"bad offer: {exc}") from exc
        except InvalidStateError as exc:  # closed (by its room) while it negotiated
            raise NegotiationError(f"peer closed: {exc}") from exc
        self.extension_ids = extensions.section_maps(answer)
        twcc_id = next((ids[extensions.TRANSPORT_CC] for ids in self.extension_ids.values()
                        if extensions.TRANSPORT_CC in ids), 0)
        if twcc_id and self.feedback is None:
            self.feedback = twcc.FeedbackSender(twcc_id, self.rtcp_ssrc, FEEDBACK_INTERVAL_US)
        return announce(answer, self.addresses, self.announced)

    def _on_receive_params(self, tr: Any, parameters: RTCRtpReceiveParameters) -> None:
        if tr.receiver.transport.state != "connected":
            return
        self._ensure_wire(tr.receiver.transport)
        codec, rtx_pt = codec_of(parameters, tr.kind)
        if tr.mid in self.demux.layers:
            self.demux.expect(codec, rtx_pt, tr.mid)
            return
        encoding = next((e for e in parameters.encodings if e.ssrc), None)
        ssrc = encoding.ssrc if encoding else None
        if any(p.codec.payload_type == codec.payload_type and p.kind == codec.kind
               for p in self.producers.values()):
            return
        if ssrc is None:
            self._pending_pt[codec.payload_type] = (codec, tr)
            return
        self._add_producer(codec, ssrc, tr.mid)
        if encoding is not None and encoding.rtx is not None and encoding.rtx.ssrc:
            self._rtx[encoding.rtx.ssrc] = self.producers[ssrc]

    def _add_producer(self, codec: Codec, ssrc: int, mid: str | None) -> None:
        producer = self._new_producer(self, codec, ssrc)
        producer.ext_in = extensions.Inbound.of(self.extension_ids.get(mid or "", {}))
        self.producers[ssrc] = producer
        self._on_producer(self, producer)

    def _add_layer(self, codec: Codec, ssrc: int, mid: str, track: SimulcastTrack, order: int) -> Producer:
        producer = self._new_producer(self, codec, ssrc)
        producer.ext_in = extensions.Inbound.of(self.extension_ids.get(mid, {}))
        producer.simulcast = track
        track.insert(producer, order)
        self.producers[ssrc] = producer
        self._on_producer(self, producer)
        return producer

    def _add_rtx(self, ssrc: int, producer: Producer) -> None:
        self._rtx[ssrc] = producer

    def down_now(self) -> None:
        """The estimate just fell (a queue or losses): simulcast viewers go down now, not at the tick."""
        self.probing.down_now()

    def offer_pending(self) -> bool:
        """An offer is in the making or waits for its answer: a new one must wait (``needs_offer``)."""
        return self.offering or self.pc.signalingState != "stable"

    async def make_offer(self, producers: list[Producer]) -> str | None:
        """Subscriber: add a sendonly transceiver per new producer, retire closed ones; None if unchanged."""
        self.offering = True
        self.needs_offer = False
        try:
            return await self._make_offer(producers)
        except InvalidStateError as exc:  # closed (by its room) while it negotiated
            raise NegotiationError(f"peer closed: {exc}") from exc
        finally:
            self.offering = False

    async def _make_offer(self, producers: list[Producer]) -> str | None:
        changed = False
        live = {id(p) for p in producers}
        for tr in self.pc.getTransceivers():
            p = self._transceiver_producer.get(id(tr))
            held = self._consumer_of.get(id(tr))  # open: held for its track to come back
            if p is not None and id(p) not in live and tr.direction != "inactive" and (held is None or held.closed):
                tr.direction = "inactive"
                changed = True
        known = {id(p) for p in self._transceiver_producer.values()}
        for p in producers:
            if id(p) in known:
                continue
            tr = self.pc.addTransceiver(p.kind, direction="sendonly")
            tr.setCodecPreferences(preferences_for(p.codec))
            private.capture_send(tr.sender, partial(self._on_send_params, tr, p))
            self._transceiver_producer[id(tr)] = p
            if not self.hidden:  # a tap waits for the schedule: no PLI of its own
                p.prepare_join()
            changed = True
        if not changed and self.pc.localDescription is not None:
            return None
        self._prepare()
        await self.pc.setLocalDescription(await self.pc.createOffer())
        offer, self._offer_ids = extensions.complete_offer(self.pc.localDescription.sdp, self._offer_ids)
        return announce(offer, self.addresses, self.announced)

    async def accept_answer(self, answer_sdp: str) -> None:
        self.extension_ids = extensions.section_maps(answer_sdp)
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))
        except (ValueError, AssertionError, KeyError, TypeError) as exc:
            raise NegotiationError(f"bad answer: {exc}") from exc

    def _on_send_params(self, tr: Any, producer: Producer, parameters: RTCRtpSendParameters) -> None:
        if id(tr) in self._consumer_of or producer.closed or tr.sender.transport.state != "connected":
            return
        wire = self._ensure_wire(tr.sender.transport)
        codec, rtx_pt = codec_of(parameters, tr.kind)
        ssrc, rtx_ssrc = private.sender_ssrcs(tr.sender)
        out = extensions.Outbound.of(self.extension_ids.get(tr.mid or "", {}), tr.mid)
        if self.native is None and self.plane is not None:
            self.native = self.plane.wire(tr.sender.transport, wire)
            if self.native is not None:
                self.link.use_departures(self.native.departures)
        consumer = fanout.consumer_for(self.native, wire, f"{producer.producer_id}:{self.peer_id}", producer, ssrc,
                                       codec.payload_type, rtx_ssrc, rtx_pt, self.hidden, out, self.link.departures)
        self._consumer_of[id(tr)] = consumer
        consumer.on_first = None if self.hidden else self._first_packet
        self.consumers[ssrc] = consumer
        producer.add_consumer(consumer, replay=not self.hidden)
        if producer.simulcast is not None:
            producer.simulcast.add(consumer, estimate=self.probing.estimate, probe=self.probing.probe)

    def rebind(self, consumer: Consumer, producer: Producer) -> None:
        """``consumer`` (held: sfu/orphans.py) goes on with ``producer`` in place: its m-line's now."""
        self._transceiver_producer.update({k: producer for k, c in self._consumer_of.items() if c is consumer})
        consumer.switch_at_keyframe(producer)

    def _first_packet(self) -> None:
        notify, self.on_first_media = self.on_first_media, None
        if notify is not None:
            notify()

    async def add_ice_candidate(self, candidate: IceCandidate | None) -> None:
        if candidate is None:
            await self.pc.addIceCandidate(None)
            return
        text = candidate.candidate.removeprefix("a=").removeprefix("candidate:")
        try:
            c = candidate_from_sdp(text)
        except (ValueError, IndexError) as exc:
            raise NegotiationError(f"bad candidate: {exc}") from exc
        c.sdpMid = candidate.sdp_mid
        c.sdpMLineIndex = candidate.sdp_mline_index
        if c.sdpMid is None and c.sdpMLineIndex is None:
            c.sdpMLineIndex = 0
        await self.pc.addIceCandidate(c)

    # media -----------------------------------------------------------------------------------

    def on_rtp(self, data: bytes) -> None:
        if len(data) < 12:
            self.malformed_rtp += 1
            return
        ssrc = int.from_bytes(data[8:12], "big")
        if self.feedback is not None and data[0] & 0x10:
            self.send_feedback(self.feedback.on_rtp(data, ssrc, time.monotonic_ns() // 1000))
        producer = self.producers.get(ssrc)
        if producer is not None:
            producer.on_rtp(data)
            return
        rtx = self._rtx.get(ssrc)
        if rtx is not None:
            self._on_rtx(rtx, data)
            return
        if self.demux.pending and self.demux.on_unknown(data, ssrc, self.extension_ids, self._add_layer, self._add_rtx):
            if ssrc in self.producers:
                self.producers[ssrc].on_rtp(data)  # the layer's first packet (often its keyframe's)
            return
        pending = self._pending_pt.pop(data[1] & 0x7F, None)
        if pending is not None:
            self._add_producer(pending[0], ssrc, pending[1].mid)
            return
        self.unknown_ssrc += 1

    def send_feedback(self, packet: bytes | None) -> None:
        if packet is not None and self.wire is not None:
            self.wire.send_rtcp(packet)

    def _on_rtx(self, producer: Producer, data: bytes) -> None:
        """A retransmission (RFC 4588) from the publisher: unwrap it into the original packet."""
        off = payload_offset(data)
        end = payload_end(data) if off >= 0 else 0
        if off >= 0 and end == off:  # padding only: a bandwidth probe (its transport-cc number is recorded)
            self.probes += 1
            return
        if off < 0 or end - off < 3:
            self.malformed_rtp += 1
            return
        producer.rtx_received += 1
        held = producer.duplicates
        producer.on_rtp(HEADER.pack(0x80, (data[1] & 0x80) | producer.codec.payload_type,
                                    (data[off] << 8) | data[off + 1], int.from_bytes(data[4:8], "big"),
                                    producer.ssrc) + data[off + 2 : end])
        if producer.duplicates != held:  # a packet we had: a probe with a payload (or a late repair)
            self.probes += 1

    def send_nack(self, producer: Producer, seqs: list[int]) -> None:
        if self.wire is not None:
            self.wire.send_rtcp(rtcp.build_nack(self.rtcp_ssrc, producer.ssrc, seqs))

    def on_rtcp(self, data: bytes) -> None:
        self.rtcp_io.on_rtcp(data)

    def link_stats(self) -> dict[str, Any]:
        """What this peer (and only it) may see of its own link: the SFU's estimate toward it, and
        how many transport-cc feedbacks we sent it (a publisher)."""
        return {**self.link.stats(),
                "transport_cc_feedback_sent": self.feedback.arrivals.sent if self.feedback is not None else 0}

    def send_pli(self, producer: Producer) -> None:
        if self.wire is not None:
            self.wire.send_rtcp(rtcp.build_pli(self.rtcp_ssrc, producer.ssrc))

    def tick(self) -> None:
        """Once a second: follow the ICE pair; RR + REMB to a publisher, SRs to a subscriber."""
        self.rtcp_io.tick()

    async def close(self) -> list[Producer]:
        """Close consumers and the peer connection; returns the producers the router must close."""
        if self.closed:
            return []
        self.closed = True
        for c in self.consumers.values():
            c.close()
        self.consumers.clear()
        if self.native is not None:
            self.native.close()  # its queued packets go before the socket does
        producers = list(self.producers.values())
        self.producers.clear()
        await self.pc.close()
        return producers
