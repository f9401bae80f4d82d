"""Fresh SFU offers for peers whose tracks changed, asked for off the SFU's listener callback.

The show book and the call media each own one :class:`Renegotiations` (made with them, closed with
them): the SFU calls ``renegotiation_needed`` from its own paths, so the new offer is asked for in a
task of its own, and an error for one peer is logged, never raised into the SFU.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sfu.types import MediaService, PeerId
from switchboard.ids import RoomId
from switchboard.tasks import stop_tasks

log = logging.getLogger("switchboard.signaling")

OfferSink = Callable[[str], None]
"""Sends a new offer to the client that owns the peer (a ``show.offer`` or ``call.sfu_offer`` frame)."""


class Renegotiations:
    def __init__(self, media: MediaService) -> None:
        self._media = media
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, room_id: RoomId, peer_id: PeerId, send: OfferSink) -> None:
        """Asks the SFU for a new offer for ``peer_id``; ``send`` gets it (none when nothing changed)."""
        task = asyncio.get_running_loop().create_task(self._renegotiate(room_id, peer_id, send))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _renegotiate(self, room_id: RoomId, peer_id: PeerId, send: OfferSink) -> None:
        try:
            offer = await self._media.renegotiate(room_id, peer_id)
        except Exception as exc:  # the SFU's error for one peer must not take the listener down
            log.warning("renegotiation failed", extra={"room": room_id, "peer": peer_id, "error": str(exc)})
            return
        if offer is not None:
            send(offer)

    async def close(self) -> None:
        """Cancels and awaits the renegotiations in flight. Safe to call twice."""
        await stop_tasks(list(self._tasks))
