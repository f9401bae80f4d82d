"""The fan-out: how a producer's packet reaches its consumers' viewers.

Two paths do the same thing (the same bytes leave, see ``tests/sfu/test_native_fanout.py``):

* ``python``: each :class:`~sfu.consumer.Consumer` writes its header, pylibsrtp protects, the asyncio
  datagram transport sends: three Python frames, four allocations and three payload copies per copy;
* ``native``: one :class:`Plane` per worker owns an SRTP session per viewer transport (keys exported
  from aiortc's DTLS handshake) and, in one call per received packet (``fo_fanout`` in
  ``sfu/native/fanout.c``), writes every consumer's header from its :class:`NativeConsumer` record,
  encrypts in place and queues; the queue leaves with ``sendmmsg``, one call per socket, at ``batch``
  packets or at the end of the fan-out (``flush_ms`` 0) or after ``flush_ms``. The session is made by
  pylibsrtp's own libsrtp (statically linked on OpenSSL) and encrypted with through its
  ``srtp_protect`` (``srtp`` ``auto``: ~0.8 us less per copy than Debian's libsrtp2 on NSS), else by
  the system's libsrtp2 (``srtp`` ``system``, or when pylibsrtp refuses the keys).

Layer selection, keyframe waits and switches stay in Python (the consumer's offsets and producer are
what it decided; the record holds the offsets). VP8 temporal layers of a simulcast viewer are filtered
in C too, per packet, from the filter state its record points to (``sfu/fanout_temporal.py``). RTCP
stays on aiortc's session. All RTP of a native consumer (retransmissions too) goes through its native
session: one SRTP sender per SSRC.

``mode``: ``auto`` is native when the extension is built, else python (logged once per worker).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
from typing import TYPE_CHECKING, Any

from sfu import aiortc_private as private
from sfu import native
from sfu.consumer import Consumer
from sfu.extensions import PASSTHROUGH, Outbound
from sfu.fanout_temporal import NativeShifts, NativeTemporal
from sfu.temporal import MAX_TID, SeqShifts
from sfu.twcc import Departures, Feedback
from sfu.types import FanoutConfig

if TYPE_CHECKING:
    from sfu.producer import Producer

log = logging.getLogger(__name__)

NO_VALUES = (bytes(16 * len(PASSTHROUGH)), bytes(len(PASSTHROUGH)))
"""A packet without passthrough values, as the fan-out reads them."""

class FanoutUnavailable(RuntimeError):
    """``native`` was asked for and the extension is not built."""


def open_plane(config: FanoutConfig) -> Plane | None:
    """The worker's native plane, or None for the Python path; says which once (INFO)."""
    if config.mode == "python":
        log.info("sfu fan-out: python (asked for)")
        return None
    loaded = native.load()
    if isinstance(loaded, str):
        if config.mode == "native":
            raise FanoutUnavailable(loaded)
        log.info("sfu fan-out: python (%s)", loaded)
        return None
    log.info("sfu fan-out: native (%s, sendmmsg, batch %d, flush %.1f ms)",
             "pylibsrtp's libsrtp" if config.srtp == "auto" else "libsrtp2", config.batch, config.flush_ms)
    return Plane(loaded[0], loaded[1], config)


class Plane:
    """A worker's native forwarding plane. ``close()`` (idempotent) after its transports are closed."""

    def __init__(self, ffi: Any, lib: Any, config: FanoutConfig) -> None:
        self.ffi = ffi
        self.lib = lib
        self.flush_s = config.flush_ms / 1000
        self.srtp = config.srtp
        self._p = lib.fo_plane_new(config.batch)
        if self._p == ffi.NULL:
            raise FanoutUnavailable("fo_plane_new failed (srtp_init)")
        self._timer: asyncio.TimerHandle | None = None
        self.wires: set[NativeWire] = set()
        self.closed = False

    def wire(self, dtls: Any, rtcp: private.WireSender) -> NativeWire | None:
        """The native sender of a connected viewer transport; None (the Python path for it) when its
        keys cannot be had or libsrtp2 refuses them."""
        keying = private.srtp_tx_keying(dtls)
        if keying is None or self.closed:
            return None
        profile, key = keying
        sender = private.bundled_srtp_sender(profile, key) if self.srtp == "auto" else None
        if sender is not None:
            t = self.lib.fo_transport_adopt(self.ffi.cast("void *", sender.session),
                                            self.ffi.cast("void *", sender.protect))
        else:
            t = self.lib.fo_transport_new(profile, key, len(key))
        if t == self.ffi.NULL:
            log.warning("sfu fan-out: libsrtp2 refused SRTP profile %d: this transport uses the Python path", profile)
            return None
        w = NativeWire(self, dtls, t, rtcp, sender)
        self.wires.add(w)
        return w

    def fanout(self, producer: Producer, seq: int, ts: int, marker: int, payload: bytes) -> None:
        """One received packet to every active consumer of ``producer`` (the producer set its
        ``departure``, ``sent_abs`` and ``ext_values`` for this packet)."""
        fan = producer.fan
        if fan is None:
            fan = producer.fan = self._fan_of(producer)
        records, count, relays, others = fan
        for c in relays:  # pipes first: another router's viewers wait for these copies
            c.forward(seq, ts, marker, payload)
        if count:
            values = producer.ext_values
            passed, lens = self._passthrough(values) if values else NO_VALUES
            now, size = producer.departure
            self.lib.fo_fanout(self._p, records, count, marker, seq, ts, payload, len(payload), producer.sent_abs,
                               passed, lens, now, size)
            if self.flush_s <= 0:
                self.lib.fo_flush(self._p)
            elif self._timer is None:
                self._timer = asyncio.get_running_loop().call_later(self.flush_s, self.flush)
        for c in others:
            c.forward(seq, ts, marker, payload)

    @staticmethod
    def _passthrough(values: tuple[tuple[str, bytes], ...]) -> tuple[bytes, bytes]:
        """The fan-out's view of a packet's passthrough values: 16 bytes per extension of
        :data:`PASSTHROUGH` and their lengths (0: absent; over 16 bytes: not forwarded, as in Python)."""
        passed = bytearray(16 * len(PASSTHROUGH))
        lens = bytearray(len(PASSTHROUGH))
        for uri, value in values:
            k = PASSTHROUGH.index(uri)
            if len(value) <= 16:
                passed[16 * k:16 * k + len(value)] = value
                lens[k] = len(value)
        return bytes(passed), bytes(lens)

    def _fan_of(self, producer: Producer) -> tuple[Any, int, list[Any], list[Any]]:
        """(array of the native consumers' records, their count, the relays, the other consumers) of
        ``producer``. Relays (pipes to other workers and nodes) are sent to before the native fan-out,
        the other Python consumers after it."""
        # A consumer filtering temporal layers is one of them: its record points to its filter's state
        # (sfu/fanout_temporal.py), which fo_fanout steps per packet.
        mine = [c for c in producer.active if isinstance(c, NativeConsumer)]
        relays = [c for c in producer.active if c.relay]
        others = [c for c in producer.active if c not in mine and not c.relay]
        return self.ffi.new("fo_consumer *[]", [c.record for c in mine] or 1), len(mine), relays, others

    def send(self, wire: NativeWire, packet: bytes) -> bool:
        """Protect and queue one ready RTP packet for ``wire``; False: refused (dropped and counted)."""
        if self.lib.fo_send(self._p, wire.t, packet, len(packet)) != 0:
            return False
        self._sent()
        return True

    def _sent(self) -> None:
        if self.flush_s <= 0:
            self.lib.fo_flush(self._p)
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.flush_s, self.flush)

    @property
    def syscalls(self) -> int:
        """``sendmmsg`` calls made so far (one per socket per flush)."""
        return 0 if self.closed else int(self.lib.fo_plane_syscalls(self._p))

    def flush(self) -> int:
        """Send what is queued now; returns how many packets left."""
        self._timer = None
        return 0 if self.closed else int(self.lib.fo_flush(self._p))

    def close(self) -> None:
        if self.closed:
            return
        if self._timer is not None:
            self._timer.cancel()
        self.flush()
        for w in list(self.wires):
            w.close()
        self.closed = True
        self.lib.fo_plane_free(self._p)


class NativeWire:
    """A viewer transport's native sender: its libsrtp2 session, socket and viewer address (it follows
    the nominated ICE pair at :meth:`refresh`). RTCP goes through aiortc's session (``rtcp``)."""

    def __init__(self, plane: Plane, dtls: Any, t: Any, rtcp: private.WireSender,
                 sender: private.BundledSender | None = None) -> None:
        self.plane = plane
        self.dtls = dtls
        self.t = t
        self.sender = sender
        """The pylibsrtp session the plane encrypts with (freed after the transport); None: the plane's
        own libsrtp2 session (the system's)."""
        self.rtcp = rtcp
        self.target: tuple[int, str, int] | None = None
        self.departures = NativeDepartures(self)
        self._fd = -1
        self.closed = False
        self.refresh()

    def refresh(self) -> bool:
        """Follow the nominated pair; False when there is none (packets are dropped and counted).

        The plane sends on a duplicate of the pair's socket descriptor, owned here: a socket aioice
        closes stays open for us until the wire moves or closes, so a packet never leaves through a
        descriptor number the kernel has given to another socket meanwhile."""
        if self.closed:
            return False
        target = private.nominated_target(self.dtls)
        if target != self.target:
            self.target = target
            lib = self.plane.lib
            if target is None:
                lib.fo_transport_target(self.t, -1, 0, self.plane.ffi.NULL, 0)
            else:
                fd, host, port = target
                ip = ipaddress.ip_address(host)
                lib.fo_transport_target(self.t, self._own(os.dup(fd)), ip.version, ip.packed, port)
        return target is not None

    def _own(self, fd: int) -> int:
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = fd
        return fd

    def send_rtp(self, packet: bytes) -> bool:
        """Protect and send one RTP packet (a retransmission); never raises. False: dropped."""
        return not self.closed and self.plane.send(self, packet)

    def send_rtcp(self, packet: bytes) -> None:
        self.rtcp.send_rtcp(packet)

    @property
    def dropped(self) -> int:
        return 0 if self.closed else int(self.t.dropped)

    @property
    def send_errors(self) -> int:
        return 0 if self.closed else int(self.t.send_errors)

    @property
    def sent_packets(self) -> int:
        return 0 if self.closed else int(self.t.sent_packets)

    def close(self) -> None:
        """Drop what it still has queued, free its session and close its descriptor."""
        if self.closed:
            return
        self.closed = True
        self.plane.wires.discard(self)
        self.plane.lib.fo_transport_free(self.plane._p, self.t)
        self.t = self.plane.ffi.NULL
        self.sender = None  # after the transport that used it
        self._own(-1)


class NativeDepartures(Departures):
    """A viewer transport's transport-cc numbering kept by its native session (the fan-out numbers
    packets in C); the same answers as :class:`~sfu.twcc.Departures`."""

    def __init__(self, wire: NativeWire) -> None:
        self.wire = wire
        self._at = wire.plane.ffi.new("double *")

    @property
    def seq(self) -> int:  # type: ignore[override]
        return 0 if self.wire.closed else int(self.wire.t.twcc_seq)

    @seq.setter
    def seq(self, value: int) -> None:
        if not self.wire.closed:
            self.wire.t.twcc_seq = value & 0xFFFF

    def next(self, now: float, size: int) -> int:
        return 0 if self.wire.closed else int(self.wire.plane.lib.fo_twcc_next(self.wire.t, now, size))

    def sent_at(self, seq: int) -> tuple[float, int]:
        if self.wire.closed:
            return 0.0, 0
        size = self.wire.plane.lib.fo_twcc_sent(self.wire.t, seq, self._at)
        return float(self._at[0]), int(size)

    def resolve(self, feedback: Feedback) -> tuple[list[tuple[float, float, int]], int]:
        got: list[tuple[float, float, int]] = []
        lost = 0
        if self.wire.closed:
            return got, lost
        top = self.seq
        lib, t, at_ = self.wire.plane.lib, self.wire.t, self._at
        for seq, at in feedback.arrivals:
            if (top - seq) & 0xFFFF >= self.SIZE:
                continue
            if at is None:
                lost += 1
            else:
                size = lib.fo_twcc_sent(t, seq, at_)
                got.append((at_[0], at / 1e6, size))
        return got, lost


class NativeConsumer(Consumer):
    """A consumer whose packets the plane writes: its offsets and counters live in its C record."""

    def __init__(self, consumer_id: str, producer: Producer, wire: NativeWire, ssrc: int, payload_type: int,
                 rtx_ssrc: int, rtx_payload_type: int | None, hidden: bool, out: Outbound,
                 departures: Departures | None) -> None:
        self.record = wire.plane.ffi.new("fo_consumer *")
        super().__init__(consumer_id, producer, wire, ssrc, payload_type, rtx_ssrc,  # type: ignore[arg-type]
                         rtx_payload_type, hidden, out, departures)
        self.__dict__.pop("forward", None)  # Consumer bound _forward_ext: the plane writes extensions
        r = self.record
        r.transport = wire.t
        r.ssrc = ssrc
        r.payload_type = payload_type
        r.ext = 0 if out.empty else 1
        r.twcc_id = out.transport_cc if self.departures is not None else 0
        r.abs_id = out.abs_send_time
        r.mid_len = len(out.mid)
        r.mid[0:len(out.mid)] = out.mid
        for k, uri in enumerate(PASSTHROUGH):
            r.pass_ids[k] = out.passthrough.get(uri, 0)

    seq_off = property(lambda self: self.record.seq_off,  # type: ignore[assignment]
                       lambda self, v: setattr(self.record, "seq_off", v))
    ts_off = property(lambda self: self.record.ts_off,  # type: ignore[assignment]
                      lambda self, v: setattr(self.record, "ts_off", v))
    packets = property(lambda self: self.record.packets,  # type: ignore[assignment]
                       lambda self, v: setattr(self.record, "packets", v))
    octets = property(lambda self: self.record.octets,  # type: ignore[assignment]
                      lambda self, v: setattr(self.record, "octets", v))

    # temporal layers: the filter's state is in C (sfu/fanout_temporal.py) ------------------

    def use_temporal(self, target: int = MAX_TID) -> None:
        if self.temporal is None:
            plane = self.wire.plane  # type: ignore[attr-defined]
            self.temporal = NativeTemporal(plane.ffi, plane.lib)
            self.record.temporal = self.temporal.f
        self.temporal.target = target

    @property  # type: ignore[override]
    def _shifts(self) -> SeqShifts | None:
        t = self.__dict__.get("temporal")
        return t.shifts() if isinstance(t, NativeTemporal) else None

    @_shifts.setter
    def _shifts(self, shifts: SeqShifts | None) -> None:
        t = self.__dict__.get("temporal")
        if isinstance(t, NativeTemporal):
            t.set_shifts(shifts)
        elif shifts is not None:
            raise ValueError("sequence shifts without a native temporal filter")

    def _rotate_shifts(self) -> None:
        now = self._shifts
        self._shifted_before = now.copy() if isinstance(now, NativeShifts) else now
        self._shifts = None

    def _resent(self, s: int, payload: bytes) -> bytes:
        t = self.temporal
        return t.resent(s, payload) if isinstance(t, NativeTemporal) else payload

    def forward(self, seq: int, ts: int, marker: int, payload: bytes) -> None:
        """This consumer alone (the plane's fan-out does all of a producer's at once)."""
        wire: NativeWire = self.wire  # type: ignore[assignment]
        p = self.producer
        plane = wire.plane
        if wire.closed:
            return
        passed, lens = plane._passthrough(p.ext_values) if p.ext_values else NO_VALUES
        now, size = p.departure
        plane.lib.fo_fanout(plane._p, plane.ffi.new("fo_consumer *[1]", [self.record]), 1, marker, seq, ts, payload,
                            len(payload), p.sent_abs, passed, lens, now, size)
        plane._sent()

    def close(self) -> None:
        super().close()
        self.record.transport = self.wire.plane.ffi.NULL  # type: ignore[attr-defined]


def consumer_for(wire: NativeWire | None, rtcp: private.WireSender, consumer_id: str, producer: Producer,
                 ssrc: int, payload_type: int, rtx_ssrc: int, rtx_payload_type: int | None, hidden: bool,
                 out: Outbound, departures: Departures) -> Consumer:
    """A native consumer on the transport's native ``wire``, or a Python one without it."""
    if wire is None or wire.closed:
        return Consumer(consumer_id, producer, rtcp, ssrc, payload_type, rtx_ssrc, rtx_payload_type, hidden, out,
                        departures)
    return NativeConsumer(consumer_id, producer, wire, ssrc, payload_type, rtx_ssrc, rtx_payload_type, hidden, out,
                          departures)
