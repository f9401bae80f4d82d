"""A viewer's consumer whose producer closed, held a while for the same track to come back.

A show's track leaves a room and comes back when its broadcaster publishes again on this node (its
origin was drained or lost and this node's copy became the show), or when an edge pulls the show
again from its new origin (a pipe replaced by another). Without this, each viewer's consumer closed
with the old producer, every viewer was renegotiated twice (the old m-line inactive, then a new one
for the new producer: an offer and an answer per viewer, ~1 s for 150 viewers on a busy worker) and
waited for a keyframe after its answer. Instead the router hands such consumers here
(:meth:`Orphans.keep`) for :data:`HOLD_S`; a new producer of the same kind and codec, not published by
the consumer's own party, takes them over in place (:meth:`Orphans.adopt`): the viewer's SSRC and
m-line stay, its sequence numbers and timestamps go on from its last packet
(:meth:`sfu.consumer.Consumer.rebind`), it starts at the producer's next keyframe (a recent cached one
at once) and nothing is renegotiated for it. Held consumers whose track did not come back are closed
at the router's tick (:meth:`Orphans.expired`), and the room renegotiates as it did at once before.

Not held: a simulcast track's consumers (their layers are chosen per viewer), and pipe consumers
(the new producer is exported to the pipes anew).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sfu.pipe import PipeConsumer
from sfu.types import party_of

if TYPE_CHECKING:
    from sfu.consumer import Consumer
    from sfu.producer import Producer
    from sfu.transport import Transport

HOLD_S = 10.0
"""How long a consumer whose producer closed waits for its track to come back."""


@dataclass
class Held:
    consumer: Consumer
    transport: Transport
    until: float


def same_track(old: Producer, new: Producer) -> bool:
    """Whether ``new`` can feed a consumer negotiated for ``old``: same kind, codec and clock (and the
    same codec parameters when both have some)."""
    a, b = old.codec, new.codec
    return (a.kind == b.kind and a.mime_type.lower() == b.mime_type.lower() and a.clock_rate == b.clock_rate
            and (not a.parameters or not b.parameters or a.parameters == b.parameters))


class Orphans:
    """One room's held consumers."""

    def __init__(self, hold_s: float = HOLD_S) -> None:
        self.hold_s = hold_s
        self._held: list[Held] = []

    def __len__(self) -> int:
        return len(self._held)

    def release(self, producer: Producer, transports: Iterable[Transport], now: float) -> None:
        """``producer`` closed: its viewers' consumers are held for the track to come back, the others
        (pipe consumers, simulcast layers' viewers) closed."""
        forwarding = {id(c) for c in producer.active}
        owners = {id(c): t for t in transports for c in t.consumers.values()}
        for c in producer.close():
            if isinstance(c, PipeConsumer) or not self.keep(c, owners.get(id(c)), id(c) in forwarding, now):
                c.close()

    def keep(self, consumer: Consumer, transport: Transport | None, forwarding: bool, now: float) -> bool:
        """Holds ``consumer`` (its producer just closed; ``forwarding``: it was sending) for
        ``hold_s`` (:data:`HOLD_S`); False when it is not one to hold (the caller closes it)."""
        if transport is None or transport.closed or consumer.closed or consumer.producer.simulcast is not None:
            return False
        if forwarding:
            consumer.stopped()  # numbering goes on from the last packet it sent
        self._held.append(Held(consumer, transport, now + self.hold_s))
        return True

    def adopt(self, producer: Producer) -> int:
        """``producer`` (new in the room, not simulcast) takes over the held consumers it can feed, one
        per subscriber and kind; how many."""
        taken = 0
        kept: list[Held] = []
        fed: set[int] = set()
        for h in self._held:
            c, t = h.consumer, h.transport
            if (c.closed or t.closed or id(t) in fed or not same_track(c.producer, producer)
                    or party_of(producer.peer_id) == party_of(t.peer_id)):
                kept.append(h)
                continue
            fed.add(id(t))
            t.rebind(c, producer)
            taken += 1
        self._held = [h for h in kept if not h.consumer.closed and not h.transport.closed]
        return taken

    def expired(self, now: float) -> list[Consumer]:
        """The held consumers whose track did not come back in time (or all of them: ``now`` infinite);
        no longer held."""
        gone = [h.consumer for h in self._held if h.until <= now and not h.consumer.closed]
        self._held = [h for h in self._held if h.until > now and not h.consumer.closed and not h.transport.closed]
        return gone

    def holds(self, consumer: Consumer) -> bool:
        return any(h.consumer is consumer for h in self._held)
