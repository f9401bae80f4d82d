"""A room's once-a-second work (:meth:`sfu.router.Router.tick`): the keyframe schedule, simulcast
layer choices, the pipes' keepalives and RTCP (closing a pipe between nodes that went silent), and
each peer's RTCP, ICE pair and feedback.

The peers' part costs tens of microseconds each in Python; it goes in chunks of :data:`TICK_CHUNK`,
each a callback of its own, so packets that arrive meanwhile are forwarded between two chunks instead
of after every peer of the room. Done in one callback, the tick of an edge with 100 viewers held its
fan-out ~5 ms once a second: the tail of the cascade's added latency (docs/scaling.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sfu.router import Router
    from sfu.transport import Transport

log = logging.getLogger("sfu.router")

PIPE_SILENCE_S = 4.0
"""A pipe between nodes whose far end said nothing for this long is closed (its node is gone)."""
TICK_CHUNK = 8
"""Peers ticked in one callback: about the longest a packet waits for a tick (8 x tens of us)."""


def tick(router: Router) -> None:
    """One tick of ``router``; one peer's or pipe's failure never stops the others' RTCP."""
    now = time.monotonic()
    router.keyframe_schedule.tick(now)
    gone = router.orphans.expired(now)  # their track did not come back: their m-lines go inactive now
    for consumer in gone:
        consumer.close()
    if gone:
        router.ask_renegotiation()
    if router.tracks:
        router.tracks = [t for t in router.tracks if t.exposed is not None and not t.exposed.closed]
        for track in router.tracks:
            try:
                track.tick(now)
            except Exception as exc:
                router.faults.caught(exc)
    for pipe in list(router.pipes.values()):
        try:
            if pipe.sealed and pipe.remote is not None and now - pipe.heard > PIPE_SILENCE_S:
                log.warning("sfu pipe %s silent: its far node is gone", pipe.pipe_id, extra={"room": router.room_id})
                router.close_pipe(pipe.pipe_id)
                continue
            pipe.tick()
        except Exception as exc:
            router.faults.caught(exc)
    tick_transports(router, list(router.transports.values()))


def tick_transports(router: Router, transports: list[Transport]) -> None:
    """Ticks the first :data:`TICK_CHUNK` of ``transports``; the rest in the loop's next turn (after its
    poll for datagrams), until the list is done or the room closed."""
    for t in transports[:TICK_CHUNK]:
        if t.closed:
            continue
        try:
            t.tick()
        except Exception as exc:
            router.faults.caught(exc)
    rest = transports[TICK_CHUNK:]
    if rest and not router.closed:
        asyncio.get_running_loop().call_soon(tick_transports, router, rest)
