"""Simulcast: a track sent in 2-3 encodings (layers, by ``rid``), one producer per layer, and per
viewer the layer that fits the SFU's estimate of its link (``sfu.bwe``).

Choosing (:class:`LayerChoice`, pure): down fast, up slowly. The chosen layer is the highest whose
measured bitrate fits under the viewer's estimate; a lower one is taken at once; a higher one only
after the next layer up has fitted with ``UP_MARGIN`` headroom for ``UP_HOLD_S`` seconds, one layer
at a time. An estimate never grows far past what a viewer receives, so a viewer whose link can be
probed (``sfu.probe``: clusters judged by transport-cc, or REMB ramps) steps up as soon as a probe
proved the next layer; for one that cannot be (no RTX), an estimate ``TRIAL_RATIO`` above the current
layer allows a step up (a trial): if the estimate then falls under the new layer, the viewer drops
back at once and waits twice as long before the next trial (up to ``MAX_HOLD_S``). A viewer may cap
the layer (``max_layer``: a small tile needs no 720p). Without an estimate yet (no feedback), a
viewer stays where it is: it starts on the lowest layer.

Switching (:meth:`sfu.consumer.Consumer.switch_at_keyframe`): the consumer waits on the target
layer (which is asked for a keyframe, unless the viewer is a hidden tap) while it keeps forwarding
the current one, and hands over at the target's keyframe with continuous sequence numbers and a
timestamp that goes on by the time elapsed. A non-simulcast track never comes here: its fast path
is unchanged.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sfu.temporal import FRACTIONS, MAX_TID

if TYPE_CHECKING:
    from sfu.consumer import Consumer
    from sfu.producer import Producer

UP_HOLD_S = 4.0
"""Seconds the next layer up must fit before a viewer goes up (libwebrtc's and mediasoup's are 2-10 s)."""
UP_MARGIN = 1.25
"""Headroom over the next layer's bitrate the estimate must have to go up."""
TRIAL_RATIO = 1.4
"""An estimate this far above the current layer's bitrate is not limited by the link but by what we
send (estimators cap themselves near 1.5x the received rate): a step up is tried, and undone fast."""
MAX_HOLD_S = 64.0
"""The longest hold before another trial after trials that failed."""
AUDIO_RESERVE = 48_000.0
"""Bits per second kept for a viewer's audio (Opus at up to ~40 kbit/s and its headers) when
deciding whether its link carries any video: video stops first, audio goes on."""
PAUSE_AFTER_S = 2.0
"""How long a link must lack room for any video before the video pauses."""
DOWN_MARGIN = 0.8
"""A viewer stays on its layer while the estimate is above this fraction of the layer's bitrate (a
layer's measured rate swings with its keyframes, and one overuse sets the estimate to 85 % of what
arrived)."""
RATE_WINDOW_S = 2.0
"""Seconds a layer's bitrate is measured over."""


@dataclass
class LayerChoice:
    """One viewer's layer of one simulcast track (pure: times and rates passed in)."""

    current: int = 0
    max_layer: int | None = None
    """The viewer's cap (0 = lowest), or None for no cap."""
    fits_since: float | None = None
    """Since when going up has been allowed (the next layer fits, or a trial is due)."""
    hold: float = UP_HOLD_S
    """How long that must last; doubled (up to ``MAX_HOLD_S``) by each trial that failed."""
    went_up: float | None = None
    """When the last step up was made (a drop soon after it is a failed trial)."""
    temporal: int = MAX_TID
    """The highest VP8 temporal layer the viewer gets (2: all, 30 fps; 1: 15 fps; 0: 7.5 fps)."""
    layered: bool = False
    """The track carries temporal layers (``sfu.temporal``): they go before a spatial layer does."""
    paused: bool = False
    """No video at all: the link carries the audio only (``AUDIO_RESERVE``)."""
    paused_at: float = 0.0
    low_since: float | None = None
    """Since when the link has had no room for any video (it pauses after ``PAUSE_AFTER_S``)."""
    probing: bool = False
    """The viewer's link is probed before a step up (``sfu.probe``): no trials, and a step up as soon
    as the next layer fits with headroom (a probe proved it)."""
    by_remb: bool = False
    """Probed by REMB ramps (``sfu.probe.RembProber``, a viewer without transport-cc): its video is
    never paused (aiortc's REMB read 50 kbit/s on a 300 kbit/s link in the bench)."""

    def choose(self, estimate: float | None, bitrates: Sequence[float], now: float) -> int:
        """The layer to be on now, given the viewer's estimate (bit/s) and each layer's bitrate (low
        to high; a layer not measured yet counts as 0: it fits)."""
        top = len(bitrates) - 1
        if self.max_layer is not None:
            top = max(0, min(top, self.max_layer))
        if self.current > top:  # the cap came down, or a layer went away: at once
            self.current, self.fits_since = top, None
            return self.current
        if estimate is None:
            return self.current
        if self.current == 0 and self._paused(estimate, bitrates[0], now):
            return self.current
        fit = 0
        measured = any(bitrates)
        for i in range(top + 1):  # once layers are measured, a silent one (paused by the sender) never fits
            if bitrates[i] <= estimate and (bitrates[i] > 0 or not measured):
                fit = i
        rate = bitrates[self.current]
        if fit < self.current and estimate < DOWN_MARGIN * rate:
            fewer_frames = temporal_fit(estimate, rate, 1) if self.layered else None
            if fewer_frames is not None:  # 15 fps of this layer before 30 fps of the one below
                self.temporal, self.fits_since = min(self.temporal, fewer_frames), None
                return self.current
            failed = self.went_up is not None and now - self.went_up < 2 * self.hold
            self.hold = min(MAX_HOLD_S, 2 * self.hold) if failed else UP_HOLD_S
            self.current, self.fits_since, self.went_up = fit, None, None
            self.temporal = (temporal_fit(estimate, bitrates[fit], 0) or 0) if self.layered else MAX_TID
            return self.current
        if self.layered and self._temporal_up(estimate, rate):
            return self.current
        # Up when the next layer fits with headroom, or on trial when the estimate is held back only by
        # what we send (it tops out at ~1.5x the received rate: nothing probes above it).
        unbound = (not self.probing and bitrates[self.current] > 0
                   and estimate >= TRIAL_RATIO * bitrates[self.current])
        if self.current < top and ((fit > self.current and estimate >= UP_MARGIN * bitrates[self.current + 1])
                                   or (unbound and bitrates[self.current + 1] > 0)):
            if self.fits_since is None:
                self.fits_since = now
                if self.probing:  # the estimate is over the next layer only when a probe proved it
                    self.current, self.fits_since, self.went_up = self.current + 1, None, now
            elif now - self.fits_since >= self.hold or self.probing:
                self.current, self.fits_since, self.went_up = self.current + 1, None, now
        else:
            self.fits_since = None
        return self.current


    def _paused(self, estimate: float, rate: float, now: float) -> bool:
        """On the lowest layer: video stops when even its fewest frames do not fit beside the audio
        (``AUDIO_RESERVE``), and comes back when a probe proved room for them. Only viewers that can be
        probed pause: an aiortc viewer's REMB read 50 kbit/s on a 300 kbit/s link in the bench."""
        pausable = self.probing and not self.by_remb  # REMB (aiortc) is too rough to stop a viewer's video on
        if not pausable and not self.paused:
            return False
        share = FRACTIONS[0] if self.layered else 1.0
        room = estimate - AUDIO_RESERVE
        if not self.paused:
            if rate > 0 and room < DOWN_MARGIN * share * rate:
                if self.low_since is None:
                    self.low_since = now
                elif now - self.low_since >= PAUSE_AFTER_S:  # not on one dip of the estimate
                    self.paused, self.paused_at, self.temporal = True, now, 0 if self.layered else MAX_TID
                    self.low_since = None
            else:
                self.low_since = None
        elif room >= UP_MARGIN * share * rate or not pausable:
            self.paused, self.fits_since = False, None
        return self.paused

    def _temporal_up(self, estimate: float, rate: float) -> bool:
        """Temporal layers on the current layer: on the lowest, down to 7.5 fps when even 30 fps does
        not fit; up one at a time (no keyframe needed: cheap to undo). True while below the full
        frame rate (no spatial step up before it)."""
        if self.current == 0 and estimate < DOWN_MARGIN * rate:
            self.temporal = min(self.temporal, temporal_fit(estimate, rate, 0) or 0)
        if self.temporal >= MAX_TID:
            return False
        t = self.temporal
        if estimate >= UP_MARGIN * FRACTIONS[t + 1] * rate or (
                not self.probing and estimate >= TRIAL_RATIO * FRACTIONS[t] * rate):
            self.temporal = t + 1
        self.fits_since = None
        return True


def temporal_fit(estimate: float, rate: float, floor: int) -> int | None:
    """The highest temporal layer (at least ``floor``) of a layer sending ``rate`` that the estimate
    keeps (the same margin as a layer's), or None."""
    for t in range(MAX_TID, floor - 1, -1):
        if estimate >= DOWN_MARGIN * FRACTIONS[t] * rate:
            return t
    return None


@dataclass
class RateMeter:
    """A layer's bitrate from its producer's received octets, sampled once a tick."""

    samples: list[tuple[float, int]] = field(default_factory=list)

    def sample(self, now: float, octets: int) -> float:
        self.samples.append((now, octets))
        while len(self.samples) > 2 and now - self.samples[1][0] >= RATE_WINDOW_S:
            del self.samples[0]
        (t0, o0), (t1, o1) = self.samples[0], self.samples[-1]
        return 8 * (o1 - o0) / (t1 - t0) if t1 > t0 else 0.0


class SimulcastTrack:
    """The layers of one published track (producers, lowest first) and each viewer's choice. Layers
    may arrive one by one (``insert``): the first one is the track the room shows its viewers
    (``exposed``); the others are reached only by switching."""

    def __init__(self, layers: Sequence[Producer]) -> None:
        self.layers = list(layers)
        self.order = list(range(len(self.layers)))
        self.meters = [RateMeter() for _ in self.layers]
        self.bitrates = [0.0 for _ in self.layers]
        self.exposed: Producer | None = self.layers[0] if self.layers else None
        self.choices: dict[str, tuple[Consumer, LayerChoice, Callable[[], float | None] | None]] = {}
        self.probes: dict[str, Callable[[Consumer, float], str | None]] = {}
        """Per viewer that can be probed: start a probe (a cluster, or a REMB ramp) for a rate (bit/s);
        returns how its link is probed (``transport-cc``, ``remb``), None (falsy) when it cannot be
        (no RTX, no feedback of either kind, no ``abs-send-time`` for REMB)."""
        self.switches = 0
        """Layer changes decided (each becomes a switch at the target's next keyframe)."""
        self.measured: Callable[[Producer], float | None] | None = None
        """A piped track's layers' bitrates as the exporting side measured them (a layer that does not
        cross the pipe is measured there only); None, or None for a layer: measured here, from its octets."""

    def insert(self, producer: Producer, order: int) -> None:
        """A layer learnt (its first packet), ``order`` its rank in the offer (0 lowest)."""
        at = bisect.bisect(self.order, order)
        self.order.insert(at, order)
        self.layers.insert(at, producer)
        self.meters.insert(at, RateMeter())
        self.bitrates.insert(at, 0.0)
        if self.exposed is None:
            self.exposed = producer

    def drop_layer(self, producer: Producer) -> None:
        """A layer gone (closed on the far side of a pipe); the exposed one stays the track's."""
        if producer in self.layers and producer is not self.exposed:
            at = self.layers.index(producer)
            for column in (self.layers, self.order, self.meters, self.bitrates):
                del column[at]

    def add(self, consumer: Consumer, max_layer: int | None = None,
            estimate: Callable[[], float | None] | None = None,
            probe: Callable[[Consumer, float], str | None] | None = None) -> None:
        """A viewer's consumer (attached to the exposed layer) joins the choice; ``estimate`` reads its
        link's estimate (bit/s, None before any); ``probe`` probes its link (``sfu.probe``)."""
        self.choices[consumer.consumer_id] = (consumer, LayerChoice(self.layer_of(consumer), max_layer), estimate)
        if consumer.producer.codec.mime_type.lower() == "video/vp8":
            consumer.use_temporal()
        if probe is not None:
            self.probes[consumer.consumer_id] = probe

    def remove(self, consumer: Consumer) -> None:
        self.choices.pop(consumer.consumer_id, None)
        self.probes.pop(consumer.consumer_id, None)

    def set_max_layer(self, consumer_id: str, max_layer: int | None) -> None:
        found = self.choices.get(consumer_id)
        if found is not None:
            found[1].max_layer = max_layer

    def lower_layers_bps(self) -> float:
        """What the layers under the top one were measured sending (bit/s; 0 before a tick measured
        them): the room a publisher needs on top of one encoding's (``sfu.transport_rtcp``)."""
        return sum(self.bitrates[:-1])

    def layer_of(self, consumer: Consumer) -> int:
        return self.layers.index(consumer.producer) if consumer.producer in self.layers else 0

    def tick(self, now: float, estimate_of: Callable[[Consumer], float | None] | None = None,
             octets_of: Callable[[Producer], int] | None = None) -> None:
        """Once a tick: measure the layers, choose per viewer, start the switches."""
        measured = self.measured
        here = [m.sample(now, octets_of(p) if octets_of is not None else p.octets_received)
                for m, p in zip(self.meters, self.layers, strict=True)]
        if measured is not None:
            here = [r if (r := measured(p)) is not None else rate for p, rate in zip(self.layers, here, strict=True)]
        self.bitrates = here
        for consumer, choice, estimate in list(self.choices.values()):
            if consumer.closed:
                self.remove(consumer)
                continue
            choice.current = before = self.layer_of(consumer)
            bitrate = estimate() if estimate is not None else estimate_of(consumer) if estimate_of else None
            probe = self.probes.get(consumer.consumer_id)
            kind = probe(consumer, 0.0) if probe is not None else None
            choice.probing, choice.by_remb = bool(kind), kind == "remb"
            choice.layered = consumer.temporal is not None and consumer.temporal.seen
            layer = choice.choose(bitrate, self.bitrates, now)
            self._apply(consumer, choice)
            if choice.probing and layer == before and bitrate is not None and consumer.pending is None:
                self._probe_up(consumer, choice, bitrate, probe)
            if layer != before:
                self.switches += 1
            target = self.layers[layer]
            if target is not consumer.producer and target is not consumer.pending:
                consumer.switch_at_keyframe(target)
            elif target is consumer.producer and consumer.pending is not None:
                consumer.switch_at_keyframe(target)  # cancels a move no longer wanted

    def recheck(self, consumer: Consumer, now: float) -> None:
        """Between ticks, when the viewer's estimate fell: down at once if its layer no longer fits
        (rates as measured at the last tick; never up from here)."""
        found = self.choices.get(consumer.consumer_id)
        if found is None or consumer.closed:
            return
        _, choice, estimate = found
        if estimate is None:
            return
        before, bitrate = self.layer_of(consumer), estimate()
        if before == 0 or bitrate is None or bitrate >= DOWN_MARGIN * self.bitrates[before]:
            return
        choice.current = before
        layer = choice.choose(bitrate, self.bitrates, now)
        self._apply(consumer, choice)
        if layer < before:
            self.switches += 1
            consumer.switch_at_keyframe(self.layers[layer])

    @staticmethod
    def _apply(consumer: Consumer, choice: LayerChoice) -> None:
        """The choice's temporal layer and pause, on the consumer."""
        if consumer.temporal is not None and consumer.temporal.target != choice.temporal:
            consumer.use_temporal(choice.temporal)
        if choice.paused != consumer.paused:
            if choice.paused:
                consumer.pause()
            else:
                consumer.resume()

    def _probe_up(self, consumer: Consumer, choice: LayerChoice, estimate: float,
                  probe: Callable[[Consumer, float], str | None] | None) -> None:
        """Probe for the next layer up when the estimate alone does not allow it (it never grows far
        past what the viewer receives)."""
        top = len(self.bitrates) - 1 if choice.max_layer is None else min(len(self.bitrates) - 1, choice.max_layer)
        if probe is None or (choice.current >= top and choice.temporal >= MAX_TID and not choice.paused):
            return
        if choice.paused:
            share = FRACTIONS[0] if choice.layered else 1.0
            need = AUDIO_RESERVE + UP_MARGIN * share * self.bitrates[0]
        elif choice.temporal < MAX_TID:
            need = UP_MARGIN * FRACTIONS[choice.temporal + 1] * self.bitrates[choice.current]
        else:
            need = UP_MARGIN * self.bitrates[choice.current + 1]
        if need > estimate:
            probe(consumer, need)
