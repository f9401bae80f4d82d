"""A show member's own link, as the SFU sees it (``show.stats``), and its cap on simulcast layers
(``show.layers``).

The SFU keeps a send-side bandwidth estimate per viewer transport (``sfu.bwe``), its loss and the
round trip from its receiver reports. A member may ask for its own link in a show it is in, and only
its own: the request names a room, never a peer, so there is no way to name another's. A hidden tap
gets its own link too, which says nothing about anyone else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sfu.types import MediaService
from signaling.session import Session

if TYPE_CHECKING:
    from signaling.shows import ShowBook


def link_reply(link: Mapping[str, Any]) -> dict[str, Any]:
    """The wire shape of ``MediaService.link_stats``: kbps, not bits, and nothing else it may hold."""
    bitrate = link.get("available_outgoing_bitrate")
    return {"estimate_kbps": round(bitrate / 1000) if bitrate is not None else None,
            "estimate_source": link.get("estimate_source"),
            "loss": link.get("loss", 0.0),
            "rtt_ms": link.get("rtt_ms"),
            "transport_cc_feedback_sent": link.get("transport_cc_feedback_sent", 0)}


class ShowLinks:
    """The ``show.stats`` door."""

    def __init__(self, book: ShowBook, media: MediaService) -> None:
        self._book = book
        self._media = media

    async def layers(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        """``show.layers``: the most simulcast layers this member wants (absent: as many as its link takes)."""
        show, member = self._book.show_of(session, body["room"])
        most = body.get("max_layers")
        simulcast = await self._media.set_max_layer(show.room, member.peer_id, None if most is None else most - 1)
        return {"room": show.room, "simulcast_tracks": simulcast}

    async def stats(self, session: Session, body: Mapping[str, Any]) -> dict[str, Any]:
        show, member = self._book.show_of(session, body["room"])
        link = await self._media.link_stats(show.room, member.peer_id)
        return {"room": show.room, **link_reply(link)}
