"""Which simulcast layers a pipe carries: only those the far side watches (issue 17).

mediasoup pipes every encoding of a track; LiveKit forwards only the subscribed ones. A layer nobody
on the importing side watches costs the exporting worker a send per packet and the importing worker
a receive and a ``Producer.on_rtp`` per packet, for nothing (the bench's 64 viewers all sit on the
top layer: the two lower layers were ~90 of every ~255 packets a second crossing the pipe).

The importing end tells the exporting end, in a control datagram (first byte 0, then a msgpack list
of SSRCs), which simulcast layers it wants: each tick, and at once when it asks for a keyframe on a
layer it has not asked for yet (a viewer switching to it: the request is sent after the want, on
the same socket, so the layer flows before the keyframe comes). A layer is wanted while anything
consumes it there (a viewer on it or waiting at its keyframe, a tap, a pipe onward to another worker,
a clip buffer) and for ``LINGER_S`` after the last one left, so a viewer going down and back up does
not stop and restart it. A track sent alone (audio, video without simulcast) always crosses, and an
exporting end that has not heard a list yet sends every layer.

The exporting end keeps every layer's :class:`sfu.pipe.PipeConsumer`; one not wanted is off its
producer's consumers (no copy, no Python call per packet) and rejoins at the layer's next keyframe
when wanted again. Taps stay hidden: starting a layer asks the publisher for nothing (the keyframe
request is the switching viewer's own, as without a pipe; a tap waits for the scheduled keyframe).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sfu.producer import Producer

LINGER_S = 5.0
"""Seconds a layer keeps crossing after its last consumer on the importing side left it."""


class Demand:
    """Importing end: the simulcast layers wanted, by SSRC, each until ``LINGER_S`` after its last use."""

    def __init__(self) -> None:
        self.wanted_at: dict[int, float] = {}
        self.told: set[int] | None = None
        """The last list sent to the exporting end; None before the first (every layer crosses then)."""

    def wanted(self, producers: dict[int, Producer], now: float) -> set[int]:
        for ssrc, p in producers.items():
            if p.simulcast is not None and (p.active or p.waiting or p.clip is not None):
                self.wanted_at[ssrc] = now
        for ssrc in [s for s, at in self.wanted_at.items() if s not in producers or now - at >= LINGER_S]:
            del self.wanted_at[ssrc]
        return set(self.wanted_at)

    def touch(self, ssrc: int, now: float) -> bool:
        """A keyframe is asked for on this layer (a viewer moves to it): wanted from now. True when the
        exporting end has not been told yet (tell it before the request goes)."""
        self.wanted_at[ssrc] = now
        return self.told is not None and ssrc not in self.told

    def newly(self, wants: set[int], producers: dict[int, Producer]) -> set[int]:
        """The layers in ``wants`` that were not crossing (told away before): they start afresh."""
        before = self.told if self.told is not None else set(producers)
        self.told = wants
        return wants - before


def restart(producer: Producer) -> None:
    """A piped layer crossing again after a pause: its numbering starts afresh (the gap is not a loss,
    and a cached packet from before must never answer a NACK)."""
    producer.max_seq = producer.base_seq = -1
    producer.cycles = 0
    producer.missing.clear()
    cache = producer.cache
    if cache:
        cache[:] = [None] * len(cache)
