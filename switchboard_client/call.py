"""1:1 calls and random-chat matches: their media (peer to peer, or through the SFU) and their chat.

A :class:`Call` is one call or match as one party sees it. Its media path is the node's choice,
said by ``call.accepted`` / ``match.found`` (``media``): ``p2p`` relays ``call.offer``/``call.answer``
/``call.ice`` to the other party; ``sfu`` publishes with ``call.publish`` and receives the other
party's tracks with ``call.subscribe`` (docs/protocol.md, "1:1 calls", "Call media through the SFU").
Either way :meth:`Call.start` sends our tracks and :meth:`Call.track` gives the other party's.

A call or match outlives its node (docs/scaling.md, "Node loss"): when the node client comes back on a
new session (its node died or drained), the call asks to go on there (``call.rejoin``; a match names its
session id). Through the SFU it
publishes again (relayed copies of the same tracks: aiortc stops a sender's track when its peer
connection closes) and subscribes again on new peer connections; peer to peer, the media never
went through the node and goes on as it was. A call that cannot go on ends with the node's
``call.ended`` (reason ``node_lost``; a match: ``match.ended``), or, when no node is left to say so, with
the same event made here (:attr:`Call.ended`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Literal

from aiortc import MediaStreamTrack
from aiortc.contrib.media import MediaRelay
from aiortc.exceptions import InvalidStateError

from switchboard_client.errors import ClosedError, NodeError
from switchboard_client.events import Event, EventStream
from switchboard_client.node import NodeClient
from switchboard_client.peer import Peer

log = logging.getLogger("switchboard_client.call")

CALL_EVENTS = ("call.accepted", "call.ended", "call.rejoined", "call.offer", "call.answer", "call.ice", "call.chat",
               "call.like", "call.follow_request", "call.sfu_offer", "call.sfu_closed", "match.ended")
"""The server events that concern one live call or match (keyed by ``call_id`` or ``session_id``)."""


def concerns(call_id: str) -> Any:
    return lambda e: e.get("call_id", e.get("session_id")) == call_id


class Call:
    """One call or match. ``close()`` (idempotent) ends it for both (hangup, or leaving the queue)
    and closes the peer connections; after that every call raises :class:`ClosedError`."""

    def __init__(self, node: NodeClient, call_id: str, kind: Literal["call", "match"], stream: EventStream,
                 *, peer_user: str = "", media: str = "", offerer: bool = False) -> None:
        self.node = node
        self.call_id = call_id
        """The call's id (a match's ``session_id``)."""
        self.kind = kind
        self.peer_user = peer_user
        """The other party's user id."""
        self.media = media
        """``p2p`` or ``sfu`` once accepted or matched."""
        self.offerer = offerer
        """In ``p2p``, whether this side sends the offer (the caller; a match says)."""
        self.ended: Event | None = None
        """The ``call.ended`` / ``match.ended`` event once the call is over."""
        self.chats: asyncio.Queue[Event] = asyncio.Queue()
        """``call.chat`` events from the other party (``{"from", "text", ...}``)."""
        self.peer: Peer | None = None
        """Receives the other party's tracks (in ``sfu``, the subscribe leg)."""
        self._publisher: Peer | None = None
        self._tracks: list[MediaStreamTrack] = []
        self._relay = MediaRelay()
        self._media_lock = asyncio.Lock()
        """One media step at a time: a server offer waits for a rejoin's new peer connections."""
        self.rejoins = 0
        """Times the call went on after its node was lost (``call.rejoin`` on a new session)."""
        self.rejoined = asyncio.Event()
        """Set at each rejoin (clear it to wait for the next)."""
        self._hellos: EventStream | None = None
        self._follower: asyncio.Task[None] | None = None
        self._stream = stream
        self._early: list[Event] = []
        self._accepted = asyncio.Event()
        self._over = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    async def accepted(self) -> Call:
        """Waits for the callee to accept (``media`` is then known); :class:`NodeError` if the call ended
        first. Bound the wait with ``asyncio.timeout`` (the node ends an unanswered call after 30 s)."""
        waiting = asyncio.ensure_future(self._accepted.wait())
        over = asyncio.ensure_future(self._over.wait())
        try:
            await asyncio.wait({waiting, over}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()
            over.cancel()
        if not self._accepted.is_set():
            reason = (self.ended or {}).get("reason", "timeout")
            raise NodeError("ended", f"the call was not accepted ({reason})", self.ended)
        return self

    async def start(self, tracks: list[MediaStreamTrack]) -> None:
        """Sends ``tracks`` to the other party and gets ready to receive theirs (by the call's media path)."""
        self._check()
        self._tracks = tracks
        async with self._media_lock:
            if self.media == "sfu":
                await self._through_the_sfu()
            else:
                self.peer = Peer(self.node.hello.ice_servers)
                self.peer.add_tracks(tracks)
                if self.offerer:
                    await self.node.request("call.offer", call_id=self.call_id, sdp=await self.peer.offer())
        early, self._early = self._early, []
        for event in early:
            await self._on(event)

    async def _through_the_sfu(self) -> None:
        """Publishes (relayed copies of) our tracks and subscribes to the other party's, on new peers."""
        ice = self.node.hello.ice_servers
        self.peer, self._publisher = Peer(ice), Peer(ice)
        self._publisher.add_tracks([self._relay.subscribe(t, buffered=False) for t in self._tracks])
        answer = await self.node.request("call.publish", call_id=self.call_id, sdp=await self._publisher.offer())
        await self._publisher.accept_answer(answer["sdp"])
        offer = await self.node.request("call.subscribe", call_id=self.call_id)
        await self.node.request("call.sfu_answer", call_id=self.call_id, leg="subscribe",
                                sdp=await self.peer.answer(offer["sdp"]))

    async def track(self, kind: str = "video") -> MediaStreamTrack:
        """The other party's first ``kind`` track (after :meth:`start`), waiting for it."""
        if self.peer is None:
            raise ClosedError("start() the call first")
        return await self.peer.track(kind)

    async def chat(self, text: str) -> None:
        """A chat line to the other party (1-2000 characters)."""
        self._check()
        await self.node.request("call.chat", call_id=self.call_id, text=text)

    async def wait_ended(self) -> Event:
        await self._over.wait()
        assert self.ended is not None
        return self.ended

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.ended is None and not self.node.closed:
            with contextlib.suppress(NodeError, ClosedError, TimeoutError):
                if self.kind == "call":
                    await self.node.request("call.hangup", call_id=self.call_id)
                else:
                    await self.node.request("queue.leave")
        await self._shutdown()

    # --- a lost node --------------------------------------------------------------------------------

    async def _follow_node(self, hellos: EventStream) -> None:
        """A new session of the node client (not a resume: another node) takes the call on there."""
        async for hello in hellos:
            if hello.get("resumed") or self.ended is not None or self._closed:
                continue
            try:
                await self._rejoin()
            except NodeError as exc:
                if exc.code in ("not_found", "conflict"):  # the call is over
                    self._lost()
                    return
                log.warning("call %s not taken on again: %r", self.call_id, exc)
            except ClosedError as exc:
                log.warning("call %s not taken on again: %r", self.call_id, exc)
            except Exception:  # aiortc may raise anything: keep following the node
                log.exception("call %s: rejoining failed", self.call_id)

    async def _rejoin(self) -> None:
        reply = await self.node.request("call.rejoin", call_id=self.call_id)
        self.media = str(reply.get("media", self.media))
        if self.media == "sfu" and self.peer is not None:  # started: the SFU's legs were on the lost node
            async with self._media_lock:
                for peer in (self.peer, self._publisher):
                    if peer is not None:
                        await peer.close()
                await self._through_the_sfu()
        self.rejoins += 1
        self.rejoined.set()

    def _lost(self) -> None:
        """The node refused to take the call on (it ended meanwhile): its end, unless one came already."""
        if self.ended is None:
            self.node.deliver_local({"type": "call.ended", "call_id": self.call_id, "reason": "node_lost", "by": None}
                                    if self.kind == "call" else
                                    {"type": "match.ended", "session_id": self.call_id, "reason": "node_lost"})

    # --- the events of this call ----------------------------------------------------------------

    def _run(self) -> None:
        self._task = asyncio.create_task(self._follow(), name=f"switchboard_client.call.{self.call_id}")
        self._hellos = self.node.events("hello")
        self._follower = asyncio.create_task(self._follow_node(self._hellos),
                                             name=f"switchboard_client.call.{self.call_id}.rejoin")

    async def _follow(self) -> None:
        async for event in self._stream:
            try:
                await self._on(event)
            except (NodeError, ClosedError) as exc:
                log.warning("call %s: %s not handled: %r", self.call_id, event.get("type"), exc)
            except Exception:  # aiortc may raise anything: the call must still see its end
                log.exception("call %s: %s failed", self.call_id, event.get("type"))
            if self.ended is not None:
                return

    async def _on(self, event: Event) -> None:
        kind = event["type"]
        if kind == "call.accepted":
            self.media = str(event.get("media", "p2p"))
            self.peer_user = str(event["callee"] if event["caller"] == self.node.user_id else event["caller"])
            self._accepted.set()
        elif kind in ("call.ended", "match.ended"):
            self.ended = event
            self._over.set()
            if self.peer is not None:
                await self.peer.close()
            if self._publisher is not None:
                await self._publisher.close()
        elif kind == "call.chat":
            self.chats.put_nowait(event)
        elif kind == "call.rejoined":
            return  # the other party came back on a live node: its media reaches us by the SFU's offers
        elif self.peer is None:
            self._early.append(event)  # media of a call we have not started yet: replayed by start()
        else:
            async with self._media_lock:
                await self._media_event(kind, event)

    async def _media_event(self, kind: str, event: Event) -> None:
        assert self.peer is not None
        if self.peer.closed or self.ended is not None:
            return  # media still in flight for a peer this side already closed (the call is ending)
        try:
            await self._negotiate(kind, event)
        except InvalidStateError:
            if self.peer.closed or self.peer.pc.signalingState == "closed" or self._closed or self.ended is not None:
                log.debug("call %s: %s dropped: the peer closed meanwhile (the call is ending)", self.call_id, kind)
                return
            raise

    async def _negotiate(self, kind: str, event: Event) -> None:
        assert self.peer is not None
        if kind == "call.offer":
            await self.node.request("call.answer", call_id=self.call_id, sdp=await self.peer.answer(event["sdp"]))
        elif kind == "call.answer":
            await self.peer.accept_answer(event["sdp"])
        elif kind == "call.ice":
            await self.peer.add_candidate(event.get("candidate"))
        elif kind == "call.sfu_offer" and event.get("leg") == "subscribe":
            await self.node.request("call.sfu_answer", call_id=self.call_id, leg="subscribe",
                                    sdp=await self.peer.answer(event["sdp"]))

    async def _shutdown(self) -> None:
        self._stream.close()
        if self._hellos is not None:
            self._hellos.close()
        for task in (self._task, self._follower):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for peer in (self.peer, self._publisher):
            if peer is not None:
                await peer.close()

    def _check(self) -> None:
        if self._closed or self.ended is not None:
            raise ClosedError(f"the call {self.call_id} is over")


async def invite(node: NodeClient, user_id: str) -> Call:
    """Rings ``user_id``; ``await call.accepted()`` then ``await call.start(tracks)``."""
    stream = node.events(*CALL_EVENTS)
    try:
        reply = await node.request("call.invite", to=user_id)
    except BaseException:
        stream.close()
        raise
    call_id = str(reply["call_id"])
    # Only this call's events: those that came before the reply are already queued, keep those too.
    mine = node.events(*CALL_EVENTS, where=concerns(call_id))
    mine.put_back(stream.take(concerns(call_id)))
    stream.close()
    call = Call(node, call_id, "call", mine, peer_user=user_id, offerer=True)
    call._run()
    return call


class Incoming:
    """A ringing call to us: :meth:`accept` or :meth:`decline` it."""

    def __init__(self, node: NodeClient, event: Event) -> None:
        self.node = node
        self.call_id = str(event["call_id"])
        self.caller = str(event["from"])

    async def accept(self) -> Call:
        stream = self.node.events(*CALL_EVENTS, where=concerns(self.call_id))
        call = Call(self.node, self.call_id, "call", stream, peer_user=self.caller)
        call._run()
        try:
            reply = await self.node.request("call.accept", call_id=self.call_id)
        except BaseException:
            await call._shutdown()
            raise
        call.media = str(reply.get("media", "p2p"))
        call._accepted.set()
        return call

    async def decline(self) -> None:
        await self.node.request("call.decline", call_id=self.call_id)


async def next_incoming(stream: EventStream, node: NodeClient) -> Incoming:
    """The next ``call.incoming`` from ``stream`` (made with ``node.events("call.incoming")`` beforehand)."""
    return Incoming(node, await stream.wait_for("call.incoming"))
