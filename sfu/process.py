"""The body of one worker process: a :class:`Worker` serving its pool over a unix socket."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import resource
from typing import Any

from sfu.errors import SfuError
from sfu.events import MemoryEventSink, RedisEventSink
from sfu.framing import read_message, write_message
from sfu.keyframes import KEYFRAME_INTERVAL_S
from sfu.scheduling import request_slice
from sfu.types import EventSink, FanoutConfig, IceCandidate, PeerId
from sfu.worker import Worker
from switchboard.ids import RoomId

log = logging.getLogger(__name__)


class PoolListener:
    """Forwards the worker's listener callbacks to the parent."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    async def renegotiation_needed(self, room_id: RoomId, peer_id: PeerId) -> None:
        await self._send(["notify", 0, ["renegotiation_needed", room_id, peer_id], None])

    async def peer_closed(self, room_id: RoomId, peer_id: PeerId, reason: str) -> None:
        await self._send(["notify", 0, ["peer_closed", room_id, peer_id, reason], None])

    async def first_media(self, room_id: RoomId, peer_id: PeerId) -> None:
        await self._send(["notify", 0, ["first_media", room_id, peer_id], None])

    async def _send(self, message: list[Any]) -> None:
        write_message(self._writer, message)
        with contextlib.suppress(ConnectionError):
            await self._writer.drain()


def counters(worker: Worker) -> dict[str, Any]:
    forwarded = malformed = unknown = retransmitted = dropped = feedback = nacked = forged = switches = 0
    duplicates = 0
    held = crossing = 0
    estimates: list[int] = []
    faults = worker.tick_faults.total
    for router in worker.routers.values():
        faults += router.faults.total
        forged += sum(p.forged for p in router.pipes.values())
        for pipe in router.pipes.values():
            on, off = pipe.layers()
            crossing, held = crossing + on, held + off
        for t in router.transports.values():
            forwarded += sum(c.packets for c in t.consumers.values())
            retransmitted += sum(c.retransmitted for c in t.consumers.values())
            switches += sum(c.switches for c in t.consumers.values())
            nacked += sum(c.nacked for c in t.consumers.values())
            malformed += t.malformed_rtp + t.malformed_rtcp + sum(p.malformed for p in t.producers.values())
            unknown += t.unknown_ssrc
            duplicates += sum(p.duplicates for p in t.producers.values())
            dropped += t.wire.dropped if t.wire is not None else 0
            dropped += t.native.dropped if t.native is not None else 0
            faults += t.faults.total
            feedback += t.feedback.arrivals.sent if t.feedback is not None else 0
            if t.link.source is not None and not t.hidden:
                estimates.append(t.link.estimator.bitrate // 1000)
    estimates.sort()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"forwarded": forwarded, "retransmitted": retransmitted, "nacked": nacked, "malformed": malformed,
            "unknown_ssrc": unknown, "duplicates": duplicates, "srtp_dropped": dropped, "faults": faults,
            "transport_cc_feedback_sent": feedback, "layer_switches": switches,
            "bwe_viewers": len(estimates), "bwe_kbps_p50": estimates[len(estimates) // 2] if estimates else 0,
            "bwe_kbps_min": estimates[0] if estimates else 0,
            "pipe_forged": forged, "pipe_layers_held": held, "pipe_layers_crossing": crossing,
            "cpu_s": usage.ru_utime + usage.ru_stime, "maxrss_kb": usage.ru_maxrss,
            "pid": os.getpid()}


async def serve(path: str, addresses: tuple[str, ...], announced: str, redis_url: str | None,
                keyframe_interval_s: float = KEYFRAME_INTERVAL_S, clip_seconds: float = 0.0,
                pipe_secret: bytes = b"", pipe_host: str = "", fanout: FanoutConfig | None = None) -> None:
    slice_us = (fanout or FanoutConfig()).slice_us
    refused = request_slice(slice_us)
    if refused is None:
        log.info("sfu worker: scheduler slice %d us", slice_us)
    else:
        log.info("sfu worker: the kernel's scheduler slice (%s)", refused)
    redis = None
    events: EventSink = MemoryEventSink()
    if redis_url:
        from switchboard.redis_client import open_redis

        redis = open_redis(redis_url)
        events = RedisEventSink(redis)
    worker = Worker(addresses=tuple(addresses), announced=announced, events=events,
                    keyframe_interval_s=keyframe_interval_s, clip_seconds=clip_seconds, pipe_secret=pipe_secret,
                    pipe_host=pipe_host, fanout=fanout)
    await worker.start()
    done = asyncio.Event()
    tasks: set[asyncio.Task[None]] = set()
    writers: set[asyncio.StreamWriter] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.add(writer)
        worker.set_listener(PoolListener(writer))

        async def one(ref: int, method: str, args: list[Any]) -> None:
            try:
                if method == "shutdown":
                    result: Any = None
                    done.set()
                elif method == "counters":
                    result = counters(worker)
                elif method == "save_clip":
                    result = list(dataclasses.astuple(await worker.save_clip(*args)))
                elif method == "room_stats":
                    result = dataclasses.asdict(await worker.room_stats(*args))
                elif method == "subscribe":
                    room_id, peer_id, user_id, hidden = args
                    result = await worker.subscribe(room_id, peer_id, user_id, hidden=hidden)
                elif method == "add_ice_candidate":
                    room_id, peer_id, c = args
                    await worker.add_ice_candidate(room_id, peer_id, None if c is None else IceCandidate(*c))
                    result = None
                elif method in ("open_room", "publish", "accept_answer", "renegotiate", "close_peer", "close_room",
                                "open_pipe", "connect_pipe", "close_pipe", "link_stats",
                                "set_max_layer", "open_node_pipe", "connect_node_pipe", "close_node_pipe",
                                "node_pipes"):
                    result = await getattr(worker, method)(*args)
                else:
                    raise SfuError(f"unknown method {method}")
                reply = ["reply", ref, True, result]
            except SfuError as exc:
                reply = ["reply", ref, False, [type(exc).__name__, str(exc)]]
            except Exception as exc:  # never let one bad call kill the worker
                log.exception("worker call %s failed", method)
                reply = ["reply", ref, False, ["SfuError", f"internal error: {exc}"]]
            write_message(writer, reply)
            with contextlib.suppress(ConnectionError):
                await writer.drain()  # a parent that reads slowly slows us down, never grows our buffer

        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                _kind, ref, method, args = await read_message(reader)
                task = asyncio.create_task(one(ref, method, args))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        done.set()

    server = await asyncio.start_unix_server(handle, path)
    try:
        await done.wait()
    finally:
        server.close()
        await worker.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for writer in writers:  # the last replies (``shutdown``'s) go out before the socket closes
            with contextlib.suppress(ConnectionError, asyncio.TimeoutError):
                await asyncio.wait_for(writer.drain(), 1)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 1)
        if redis is not None:
            await redis.aclose()


def worker_main(path: str, addresses: tuple[str, ...], announced: str, redis_url: str | None,
                keyframe_interval_s: float = KEYFRAME_INTERVAL_S, clip_seconds: float = 0.0,
                pipe_secret: bytes = b"", pipe_host: str = "", fanout: FanoutConfig | None = None) -> None:
    """Process entry (spawned by :class:`sfu.pool.WorkerPool`)."""
    import uvloop

    uvloop.run(serve(path, addresses, announced, redis_url, keyframe_interval_s, clip_seconds, pipe_secret,
                     pipe_host, fanout))
