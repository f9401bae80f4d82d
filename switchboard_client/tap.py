"""A moderator's tap of a 1:1 call or match carried by the SFU (docs/protocol.md, ``call.tap``).

The tap is a hidden subscriber in the call's SFU room: the parties get no message, no SDP change
and no RTCP they would not have got anyway. It needs a token with the ``moderate`` grant (a
``hidden`` room token, e.g. for the room ``moderation``). A show is tapped with
:func:`~switchboard_client.show.tap_show` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiortc import MediaStreamTrack

from switchboard_client.call import concerns
from switchboard_client.errors import ClosedError, NodeError
from switchboard_client.events import EventStream
from switchboard_client.node import NodeClient
from switchboard_client.peer import Peer

log = logging.getLogger("switchboard_client.tap")


async def live_calls(node: NodeClient) -> list[dict[str, Any]]:
    """``call.list``: every accepted call and match with a party on the node (``moderate`` grant)."""
    return list((await node.request("call.list"))["calls"])


class CallTap:
    """Both parties' tracks of one call, for a moderator. ``close()`` (idempotent) ends the tap."""

    def __init__(self, node: NodeClient, call_id: str) -> None:
        self.node = node
        self.call_id = call_id
        self.info: dict[str, Any] = {}
        """The ``call.tap`` reply: ``kind``, ``users``, ``media``, ``started_at``."""
        self.peer = Peer(node.hello.ice_servers)
        self.ended: dict[str, Any] | None = None
        """The ``call.sfu_closed`` event (``reason: "ended"`` when the call ended)."""
        self._stream: EventStream | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def tracks(self) -> list[MediaStreamTrack]:
        return self.peer.tracks

    async def track(self, kind: str = "video") -> MediaStreamTrack:
        """The first ``kind`` track of either party (waiting for it; the video starts at the SFU's next keyframe)."""
        return await self.peer.track(kind)

    async def _open(self) -> None:
        self._stream = self.node.events("call.sfu_offer", "call.sfu_closed", where=concerns(self.call_id))
        reply = await self.node.request("call.tap", call_id=self.call_id)
        self.info = {k: v for k, v in reply.items() if k != "sdp"}
        await self.node.request("call.sfu_answer", call_id=self.call_id, leg="tap",
                                sdp=await self.peer.answer(reply["sdp"]))
        self._task = asyncio.create_task(self._follow(self._stream), name=f"switchboard_client.tap.{self.call_id}")

    async def _follow(self, stream: EventStream) -> None:
        async for event in stream:
            if event.get("leg") != "tap":
                continue
            if event["type"] == "call.sfu_closed":
                self.ended = event
                await self.peer.close()
                return
            try:
                await self.node.request("call.sfu_answer", call_id=self.call_id, leg="tap",
                                        sdp=await self.peer.answer(event["sdp"]))
            except (NodeError, ClosedError) as exc:
                log.warning("tap of %s: call.sfu_offer not answered: %r", self.call_id, exc)
            except Exception:  # aiortc may raise anything: keep following the call
                log.exception("tap of %s: call.sfu_offer failed", self.call_id)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._stream is not None:
            self._stream.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.ended is None and not self.node.closed:
            with contextlib.suppress(NodeError, ClosedError, TimeoutError):
                await self.node.request("call.untap", call_id=self.call_id)
        await self.peer.close()


async def tap_call(node: NodeClient, call_id: str) -> CallTap:
    """Opens a hidden tap on a call or match whose media go through the SFU (``unavailable`` for p2p)."""
    tap = CallTap(node, call_id)
    try:
        await tap._open()
    except BaseException:
        await tap.close()
        raise
    return tap
