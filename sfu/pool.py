"""WorkerPool: ``switchboard node --workers N``. One process per core, each running a :class:`Worker`.

The pool is the node's :class:`sfu.types.MediaService`: it places each room on a worker (the least
loaded one when the room is new) and forwards calls over a unix socket (length-prefixed msgpack).
Listener callbacks (renegotiation, peer closed) come back the same way.

Start with ``await pool.start()``, stop with ``await pool.close()`` (children are asked to close,
then terminated if they do not exit; only our own children, by PID).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import multiprocessing
import os
import tempfile
from pathlib import Path
from typing import Any

from sfu.clips import Clip
from sfu.errors import NegotiationError, SfuError, UnknownPeer, UnknownRoom, WorkerUnavailable
from sfu.keyframes import KEYFRAME_INTERVAL_S
from sfu.placement import RoomPlacement, merged_stats, room_stats_from
from sfu.types import FanoutConfig, IceCandidate, PeerId, RoomStats, SfuListener
from sfu.worker_handle import WorkerHandle
from switchboard.ids import RoomId, UserId

log = logging.getLogger(__name__)


class WorkerPool:
    """N worker processes behind one MediaService; shows bigger than one worker are piped across."""

    def __init__(self, *, workers: int, addresses: tuple[str, ...], announced: str = "",
                 redis_url: str | None = None, start_timeout: float = 20.0, viewers_per_worker: int = 0,
                 respawn: bool = True, keyframe_interval_s: float = KEYFRAME_INTERVAL_S,
                 clip_seconds: float = 0.0, pipe_secret: bytes = b"", pipe_host: str = "",
                 fanout: FanoutConfig | None = None) -> None:
        self.fanout = fanout if fanout is not None else FanoutConfig()
        """Each worker's fan-out choice (sfu.fanout)."""
        self.size = workers if workers > 0 else (os.cpu_count() or 1)
        self.addresses = addresses
        self.announced = announced
        self.redis_url = redis_url
        self.start_timeout = start_timeout
        self.viewers_per_worker = viewers_per_worker
        self.respawn = respawn
        self.keyframe_interval_s = keyframe_interval_s
        self.clip_seconds = clip_seconds
        self._pipe_secret = pipe_secret
        """Seals pipes between nodes (``cascade.secret``): handed to each worker process, never logged."""
        self.pipe_host = pipe_host
        self.workers: list[WorkerHandle] = []
        self.rooms: dict[RoomId, RoomPlacement] = {}
        self._listener: list[SfuListener | None] = [None]
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._pipe_ids = itertools.count(1)
        self._slots = itertools.count(0)
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    async def start(self) -> None:
        self._tmp = await asyncio.to_thread(tempfile.TemporaryDirectory, prefix="sfu-")
        try:
            for _ in range(self.size):
                await self._spawn()
        except BaseException:
            await self.close()
            raise

    async def _spawn(self) -> WorkerHandle:
        from sfu.process import worker_main

        assert self._tmp is not None
        index = next(self._slots)
        path = Path(self._tmp.name) / f"w{index}.sock"
        proc = multiprocessing.get_context("spawn").Process(
            target=worker_main, name=f"sfu-worker-{index}", daemon=True,
            args=(str(path), self.addresses, self.announced, self.redis_url, self.keyframe_interval_s,
                  self.clip_seconds, self._pipe_secret, self.pipe_host, self.fanout))
        await asyncio.to_thread(proc.start)
        handle = WorkerHandle(index, proc, path)
        await handle.connect(self._notify, self.start_timeout, self._lost)
        self.workers.append(handle)
        return handle

    async def close(self) -> None:
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        workers, self.workers = self.workers, []
        for w in workers:
            await w.close()
        self.rooms.clear()
        if self._tmp is not None:
            await asyncio.to_thread(self._tmp.cleanup)
            self._tmp = None

    def pids(self) -> list[int]:
        return [w.pid for w in self.workers if w.pid is not None]

    # placement -------------------------------------------------------------------------------

    def _placement(self, room_id: RoomId) -> RoomPlacement:
        """Where an open room lives; never places one (that is :meth:`open_room`)."""
        placement = self.rooms.get(room_id)
        if placement is None:
            raise UnknownRoom(f"room {room_id} is not open")
        return placement

    def _homes(self, w: WorkerHandle) -> int:
        return sum(1 for p in self.rooms.values() if p.home is w)

    def _peer_worker(self, room_id: RoomId, peer_id: PeerId) -> WorkerHandle:
        placement = self.rooms.get(room_id)
        found = placement.peers.get(peer_id) if placement else None
        if found is None:
            raise UnknownPeer(peer_id)
        return found[0]

    def _place(self, placement: RoomPlacement, peer_id: PeerId, w: WorkerHandle, viewer: bool) -> None:
        placement.peers[peer_id] = (w, viewer)
        w.peers += 1

    def _unplace(self, placement: RoomPlacement, peer_id: PeerId) -> None:
        found = placement.peers.pop(peer_id, None)
        if found is not None:
            found[0].peers -= 1

    async def _viewer_worker(self, room_id: RoomId) -> tuple[RoomPlacement, WorkerHandle]:
        """The worker a new viewer goes to: the first host under the threshold, else a new pipe."""
        async with self._lock:
            placement = self._placement(room_id)
            limit = self.viewers_per_worker
            if limit <= 0:
                return placement, placement.home
            for w in placement.hosts():
                if placement.viewers_on(w) < limit:
                    return placement, w
            spare = [w for w in self.workers if w not in placement.hosts()]
            if not spare:
                return placement, min(placement.hosts(), key=lambda h: (placement.viewers_on(h), h.index))
            w = min(spare, key=lambda h: (h.peers, h.index))
            await self._pipe(room_id, placement, w)
            return placement, w

    async def _tap_worker(self, room_id: RoomId) -> tuple[RoomPlacement, WorkerHandle]:
        """A tap goes where the room already is (the host with the fewest viewers): opening a pipe for
        it would send the publishers a keyframe request that only the tap explains."""
        async with self._lock:
            placement = self._placement(room_id)
            return placement, min(placement.hosts(), key=lambda h: (placement.viewers_on(h), h.index))

    async def _pipe(self, room_id: RoomId, placement: RoomPlacement, far: WorkerHandle) -> None:
        """pipeToRouter: the room's home router exports its producers into a router on ``far``."""
        pipe_id = f"pipe{next(self._pipe_ids)}"
        home = placement.home
        await far.call("open_room", room_id)
        far_port = await far.call("open_pipe", room_id, pipe_id)
        home_port = await home.call("open_pipe", room_id, pipe_id)
        descriptors = await home.call("connect_pipe", room_id, pipe_id, far_port, True)
        await far.call("connect_pipe", room_id, pipe_id, home_port, False, descriptors)
        placement.pipes[far] = pipe_id

    async def _notify(self, method: str, room_id: RoomId, peer_id: PeerId, rest: list[Any]) -> None:
        if method == "peer_closed":  # the worker closed it on its own (ICE failure)
            placement = self.rooms.get(room_id)
            if placement is not None:
                self._unplace(placement, peer_id)
        listener = self._listener[0]
        if listener is not None:
            await getattr(listener, method)(room_id, peer_id, *rest)

    # a worker process that went away -----------------------------------------------------------

    def _lost(self, handle: WorkerHandle) -> None:
        if self._closing or handle not in self.workers:
            return
        self.workers.remove(handle)
        task = asyncio.get_running_loop().create_task(self._recover(handle))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _recover(self, dead: WorkerHandle) -> None:
        """Close what the dead worker held: its peers, and whole rooms whose home it was; then replace it."""
        log.error("sfu worker %s (pid %s) went away", dead.index, dead.pid)
        closed: list[tuple[RoomId, PeerId]] = []
        for room_id, placement in list(self.rooms.items()):
            if placement.home is dead:
                del self.rooms[room_id]
                closed += [(room_id, p) for p in placement.peers]
                for far in placement.pipes:
                    with contextlib.suppress(SfuError):
                        await far.call("close_room", room_id)
                for peer_id in list(placement.peers):
                    self._unplace(placement, peer_id)
            elif dead in placement.pipes:
                pipe_id = placement.pipes.pop(dead)
                with contextlib.suppress(SfuError):
                    await placement.home.call("close_pipe", room_id, pipe_id)
                for peer_id in [p for p, (w, _) in placement.peers.items() if w is dead]:
                    self._unplace(placement, peer_id)
                    closed.append((room_id, peer_id))
        listener = self._listener[0]
        for room_id, peer_id in closed:
            if listener is not None:
                try:
                    await listener.peer_closed(room_id, peer_id, "worker-lost")
                except Exception:
                    log.exception("listener failed on peer_closed")
        await dead.close()  # its socket, then join (or terminate) the process
        if self.respawn and not self._closing:
            try:
                await self._spawn()
            except SfuError:
                log.exception("could not replace sfu worker %s", dead.index)

    # MediaService ----------------------------------------------------------------------------

    def set_listener(self, listener: SfuListener | None) -> None:
        self._listener[0] = listener

    async def open_room(self, room_id: RoomId) -> None:
        """Place a new room on the least loaded worker and open it there; an open room stays as it is."""
        async with self._lock:
            if room_id in self.rooms:
                return
            if not self.workers:
                raise WorkerUnavailable("no worker process is running")
            home = min(self.workers, key=lambda h: (h.peers, self._homes(h), h.index))
            placement = self.rooms[room_id] = RoomPlacement(home)
            try:
                await home.call("open_room", room_id)
            except SfuError:
                if self.rooms.get(room_id) is placement:
                    del self.rooms[room_id]
                raise

    async def publish(self, room_id: RoomId, peer_id: PeerId, user_id: UserId, offer_sdp: str) -> str:
        placement = self._placement(room_id)
        fresh = peer_id not in placement.peers
        if fresh:
            self._place(placement, peer_id, placement.home, False)
        try:
            return await placement.home.call("publish", room_id, peer_id, user_id, offer_sdp)
        except SfuError:
            if fresh:  # the router closed the half-made peer
                self._unplace(placement, peer_id)
            raise

    async def add_ice_candidate(self, room_id: RoomId, peer_id: PeerId, candidate: IceCandidate | None) -> None:
        c = None if candidate is None else dataclasses.astuple(candidate)
        await self._peer_worker(room_id, peer_id).call("add_ice_candidate", room_id, peer_id, c)

    async def subscribe(self, room_id: RoomId, peer_id: PeerId, user_id: UserId, *, hidden: bool = False) -> str:
        placement, w = await (self._tap_worker(room_id) if hidden else self._viewer_worker(room_id))
        if peer_id in placement.peers:
            raise NegotiationError("peer already exists")
        self._place(placement, peer_id, w, not hidden)  # a tap never counts toward opening a pipe
        try:
            return await w.call("subscribe", room_id, peer_id, user_id, hidden)
        except SfuError:
            self._unplace(placement, peer_id)
            raise

    async def accept_answer(self, room_id: RoomId, peer_id: PeerId, answer_sdp: str) -> None:
        await self._peer_worker(room_id, peer_id).call("accept_answer", room_id, peer_id, answer_sdp)

    async def renegotiate(self, room_id: RoomId, peer_id: PeerId) -> str | None:
        return await self._peer_worker(room_id, peer_id).call("renegotiate", room_id, peer_id)

    async def close_peer(self, room_id: RoomId, peer_id: PeerId) -> None:
        placement = self.rooms.get(room_id)
        if placement is None or peer_id not in placement.peers:
            return
        w = placement.peers[peer_id][0]
        self._unplace(placement, peer_id)
        await w.call("close_peer", room_id, peer_id)

    async def close_room(self, room_id: RoomId) -> None:
        placement = self.rooms.pop(room_id, None)
        if placement is None:
            return
        for peer_id in list(placement.peers):
            self._unplace(placement, peer_id)
        for w in reversed(placement.hosts()):  # the far ends first, then the publishers' home
            await w.call("close_room", room_id)

    async def room_stats(self, room_id: RoomId) -> RoomStats:
        """The room over all its workers: publishers from the home, viewers and consumers summed."""
        placement = self._placement(room_id)
        return merged_stats(room_id, [room_stats_from(await w.call("room_stats", room_id))
                                      for w in placement.hosts()])

    async def set_max_layer(self, room_id: RoomId, peer_id: PeerId, max_layer: int | None) -> int:
        """A viewer's cap on its simulcast layers, on the worker its transport is on."""
        return int(await self._peer_worker(room_id, peer_id).call("set_max_layer", room_id, peer_id, max_layer))

    async def link_stats(self, room_id: RoomId, peer_id: PeerId) -> dict[str, Any]:
        """One peer's own link, from the worker its transport is on (for that peer only)."""
        return dict(await self._peer_worker(room_id, peer_id).call("link_stats", room_id, peer_id))

    async def save_clip(self, room_id: RoomId) -> Clip:
        """An evidence clip of the room, made by its home worker (where its publishers are)."""
        return Clip(*await self._placement(room_id).home.call("save_clip", room_id))

    # pipes between nodes (the cascade): always on the room's home worker -----------------------

    async def open_node_pipe(self, room_id: RoomId, pipe_id: str, clip: bool = False) -> int:
        """Our end of a sealed pipe to another node, on the room's home worker; returns its UDP port.
        Exporting, the home worker sends the publishers' tracks; importing, its router holds the
        piped producers, and the pool's own pipes carry them on to the other workers as usual."""
        return int(await self._placement(room_id).home.call("open_node_pipe", room_id, pipe_id, clip))

    async def connect_node_pipe(self, room_id: RoomId, pipe_id: str, host: str, port: int, export: bool,
                                descriptors: list[Any] | None = None) -> list[Any]:
        return list(await self._placement(room_id).home.call("connect_node_pipe", room_id, pipe_id, host, port,
                                                             export, descriptors))

    async def close_node_pipe(self, room_id: RoomId, pipe_id: str) -> None:
        placement = self.rooms.get(room_id)
        if placement is not None:
            await placement.home.call("close_node_pipe", room_id, pipe_id)

    async def node_pipes(self, room_id: RoomId) -> list[str]:
        placement = self.rooms.get(room_id)
        return [] if placement is None else list(await placement.home.call("node_pipes", room_id))

    async def worker_counters(self) -> list[dict[str, int]]:
        """Per worker: forwarded packets (all consumers, hidden included), drops, CPU seconds."""
        return [await w.call("counters") for w in self.workers]
