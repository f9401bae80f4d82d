"""Simulcast: a track sent in 2-3 encodings (layers, by ``rid``), one producer per layer, and per
viewer the layer that fits the SFU's estimate of its link (``sfu.bwe``).

Choosing (:class:`LayerChoice`, pure): down fast, up slowly. The chosen layer is the highest whose
measured bitrate fits under the viewer's estimate; a lower one is taken at once; a higher one only
after the next layer up has fitted with ``UP_MARGIN`` headroom for ``UP_HOLD_S`` seconds, one layer
at a time. A viewer may cap the layer (``max_layer``: a small tile needs no 720p). Without an
estimate yet (no feedback), a viewer stays where it is: it starts on the lowest layer.

Switching (:meth:`sfu.consumer.Consumer.switch_at_keyframe`): the consumer waits on the target
layer (which is asked for a keyframe, unless the viewer is a hidden tap) while it keeps forwarding
the current one, and hands over at the target's keyframe with continuous sequence numbers and a
timestamp that goes on by the time elapsed. A non-simulcast track never comes here: its fast path
is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sfu.consumer import Consumer
    from sfu.producer import Producer

UP_HOLD_S = 4.0
"""Seconds the next layer up must fit before a viewer goes up (libwebrtc's and mediasoup's are 2-10 s)."""
UP_MARGIN = 1.25
"""Headroom over the next layer's bitrate the estimate must have to go up."""
RATE_WINDOW_S = 2.0
"""Seconds a layer's bitrate is measured over."""


@dataclass
class LayerChoice:
    """One viewer's layer of one simulcast track (pure: times and rates passed in)."""

    current: int = 0
    max_layer: int | None = None
    """The viewer's cap (0 = lowest), or None for no cap."""
    fits_since: float | None = None
    """Since when the next layer up has fitted, with headroom."""

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
        fit = 0
        for i in range(top + 1):
            if bitrates[i] <= estimate:
                fit = i
        if fit < self.current:
            self.current, self.fits_since = fit, None
        elif fit > self.current and estimate >= UP_MARGIN * bitrates[self.current + 1]:
            if self.fits_since is None:
                self.fits_since = now
            elif now - self.fits_since >= UP_HOLD_S:
                self.current, self.fits_since = self.current + 1, None
        else:
            self.fits_since = None
        return self.current


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
    """The layers of one published track (producers, lowest first) and each viewer's choice."""

    def __init__(self, layers: Sequence[Producer]) -> None:
        self.layers = list(layers)
        self.meters = [RateMeter() for _ in self.layers]
        self.bitrates = [0.0 for _ in self.layers]
        self.choices: dict[str, tuple[Consumer, LayerChoice]] = {}
        self.switches = 0
        """Layer changes decided (each becomes a switch at the target's next keyframe)."""

    def add(self, consumer: Consumer, max_layer: int | None = None) -> None:
        """A viewer's consumer (attached to the lowest layer) joins the choice."""
        self.choices[consumer.consumer_id] = (consumer, LayerChoice(0, max_layer))

    def remove(self, consumer: Consumer) -> None:
        self.choices.pop(consumer.consumer_id, None)

    def set_max_layer(self, consumer_id: str, max_layer: int | None) -> None:
        found = self.choices.get(consumer_id)
        if found is not None:
            found[1].max_layer = max_layer

    def layer_of(self, consumer: Consumer) -> int:
        return self.layers.index(consumer.producer) if consumer.producer in self.layers else 0

    def tick(self, now: float, estimate_of: Callable[[Consumer], float | None],
             octets_of: Callable[[Producer], int]) -> None:
        """Once a tick: measure the layers, choose per viewer, start the switches."""
        self.bitrates = [m.sample(now, octets_of(p)) for m, p in zip(self.meters, self.layers, strict=True)]
        for consumer, choice in list(self.choices.values()):
            if consumer.closed:
                self.remove(consumer)
                continue
            before = choice.current
            layer = choice.choose(estimate_of(consumer), self.bitrates, now)
            if layer != before:
                self.switches += 1
            target = self.layers[layer]
            if target is not consumer.producer and target is not consumer.pending:
                consumer.switch_at_keyframe(target)
            elif target is consumer.producer and consumer.pending is not None:
                consumer.switch_at_keyframe(target)  # cancels a move no longer wanted
