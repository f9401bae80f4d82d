"""The load of ``bench cluster``: a publisher or a group of viewers, built on the SDK (public protocols only).

These viewers decode every frame (``--sample`` / ``--decode``); the bench's default viewers count RTP
instead (``python -m sfu.cluster_viewers``: same sign-in, placement, rejoin and line protocol).

    python -m bench.cluster_clients publish --api URL --email E --password P --room R [--size 320x240]
    python -m bench.cluster_clients view --api URL --room R --first I --count K

Each process signs in through the control API, asks it for room tokens (the API's answer names the
node to connect to: placement), and follows the SDK's documented behaviour after a lost node (ask the
API again, join again). It talks to its parent in JSON lines: it prints ``{"event": "ready", ...}``
once joined, then reads commands on stdin: ``start`` (the measured window begins), ``mark T`` (a node
was killed or told to drain at unix time T: note each viewer's first frame after it on a new peer
connection, and the longest wait between two frames from T to ``stop``), ``stop`` (print
``{"event": "result", ...}`` and exit).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import VideoFrame

from bench.cluster_drain import frame_gap_ms, stall_ms
from switchboard_client import ApiClient, ApiError, NodeClient, publish_show, view_show
from switchboard_client.media import TestPattern
from switchboard_client.show import Viewing

PASSWORD = "bench-cluster-password"


async def patiently(call: Any, *args: Any) -> Any:
    """``await call(*args)``, again after a while when the API sheds load (503): signing up many
    accounts at once is the harness's work, not what is measured."""
    for _ in range(60):
        try:
            return await call(*args)
        except ApiError as exc:
            if exc.status != 503:
                raise
            await asyncio.sleep(1 + random.random())
    return await call(*args)


async def connect(api: str, tokens: Any) -> NodeClient:
    """A node client, open (a new one per try: a failed ``open`` closes it), for :func:`patiently`:
    the API sheds token requests (503) while it hashes many sign-ups' passwords."""
    node = NodeClient(api, tokens, resume_window_s=30)
    await node.open()
    return node


async def viewer_node(api: ApiClient, url: str, tag: str, index: int, room: str) -> NodeClient:
    """Viewer ``index`` signed up and in through the API (patiently), and its node client, open on the
    node the API's token answer names. Shared by the decoding and the counting viewers."""
    await api.open()
    email = f"cluster-viewer-{tag}-{index}@example.com"
    await patiently(api.register, email, PASSWORD)
    await patiently(api.login, email, PASSWORD)
    node: NodeClient = await patiently(connect, url, api.token_source(room))
    return node


def add_viewer_arguments(parser: argparse.ArgumentParser) -> None:
    """A viewer group's arguments (the decoding one here, the counting one in ``sfu.cluster_viewers``)."""
    parser.add_argument("--api", required=True)
    parser.add_argument("--room", required=True)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--tag", default="0", help="makes the accounts' emails unique per run")
    parser.add_argument("--in-flight", type=int, default=2, help="viewers signing up and joining at once")


def say(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


async def commands() -> Any:
    """Lines from the parent, as they come (a thread reads stdin: it is a pipe)."""
    while True:
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            return
        yield line.split()


async def inbound(viewing: Viewing) -> tuple[int, int]:
    """Video packets received and lost, from the peer connection's inbound-rtp stats."""
    received = lost = 0
    with contextlib.suppress(Exception):  # a peer closed meanwhile counts nothing
        for stat in (await viewing.peer.pc.getStats()).values():
            if stat.type == "inbound-rtp" and stat.kind == "video":
                received += stat.packetsReceived
                lost += max(0, stat.packetsLost)
    return received, lost


class Frames:
    """Reads a video track in the background: each decoded frame's arrival (monotonic) and RTP
    timestamp (its ``pts``: the viewer's consumer adds a constant offset of its own)."""

    def __init__(self, track: MediaStreamTrack) -> None:
        self.track = track
        self.times: list[float] = []
        self.pts: list[int] = []
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await self.track.recv()
                self.times.append(time.monotonic())
                self.pts.append(int(getattr(frame, "pts", 0) or 0))

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class PacedPattern(TestPattern):
    """The publisher's colour bars, counting the frames it made (its fps in the window: a publisher
    starved of CPU on a busy box sends fewer, whatever the nodes do)."""

    def __init__(self, width: int, height: int) -> None:
        super().__init__(width, height)
        self.frames = 0

    async def recv(self) -> VideoFrame:
        frame = await super().recv()
        self.frames += 1
        return frame


@dataclass
class Viewer:
    index: int
    api: ApiClient
    node: NodeClient | None = None
    viewing: Viewing | None = None
    counters: list[Frames] = field(default_factory=list)
    frame_times: list[float] = field(default_factory=list)
    """Wall-clock time of every decoded frame, over every peer connection this viewer had."""
    frame_pts: list[int] = field(default_factory=list)
    """The RTP timestamp of each of ``frame_times``."""
    new_peer_frames: list[float] = field(default_factory=list)
    """Wall-clock times of the frames of peer connections opened after the ``mark`` (a killed node):
    frames still in flight on the old one do not count as recovered."""
    peers_at_mark: int | None = None
    error: str | None = None

    async def follow(self) -> None:
        """Counts frames on the current track, and on the new one after each rejoin. An old track is
        read until it ends: a client that keeps its old peer connection playing while the new one
        starts has the frames of both counted."""
        assert self.viewing is not None
        copier = asyncio.create_task(self._copy())
        try:
            while True:
                self.viewing.rejoined.clear()
                self.counters.append(Frames(await self.viewing.track("video")))
                await self.viewing.rejoined.wait()
        finally:
            copier.cancel()
            for counter in self.counters:
                await counter.close()

    async def _copy(self) -> None:
        """Every 0.05 s, the new frames of every track read so far into :attr:`frame_times` (wall clock)."""
        seen: list[int] = []
        while True:
            await asyncio.sleep(0.05)
            offset = time.time() - time.monotonic()  # monotonic -> wall clock (one offset is enough)
            for i, counter in enumerate(list(self.counters)):
                if i == len(seen):
                    seen.append(0)
                times = counter.times
                if len(times) > seen[i]:
                    wall = [t + offset for t in times[seen[i]:]]
                    self.frame_times += wall
                    self.frame_pts += counter.pts[seen[i]:len(times)]
                    if self.peers_at_mark is not None and i >= self.peers_at_mark:
                        self.new_peer_frames += wall
                    seen[i] = len(times)


async def view(args: argparse.Namespace) -> None:
    gate = asyncio.Semaphore(args.in_flight)
    viewers = [Viewer(args.first + i, ApiClient(args.api, timeout_s=120)) for i in range(args.count)]
    tasks: list[asyncio.Task[None]] = []

    async def join(v: Viewer) -> None:
        step = "sign-up and connect"
        async with gate:
            try:
                v.node = await viewer_node(v.api, args.api, args.tag, v.index, args.room)
                step = "join"
                v.viewing = await view_show(v.node, args.room)
                tasks.append(asyncio.create_task(v.follow()))
                step = "first frame"
                async with asyncio.timeout(60):
                    await (await v.viewing.track("video")).recv()  # one frame decoded before "ready"
            except Exception as exc:
                v.error = f"{step}: {exc!r}"

    await asyncio.gather(*(join(v) for v in viewers))
    say("ready", joined=sum(1 for v in viewers if v.error is None), errors=[v.error for v in viewers if v.error][:3],
        nodes=[v.node.hello.node if v.node is not None and v.error is None else None for v in viewers])
    window: dict[str, Any] = {}
    async for command in commands():
        if command[0] == "start":
            window["t0"] = time.time()
            window["stats0"] = [await inbound(v.viewing) if v.viewing else (0, 0) for v in viewers]
        elif command[0] == "window":
            window["t1"] = time.time()
            window["stats1"] = [await inbound(v.viewing) if v.viewing else (0, 0) for v in viewers]
        elif command[0] == "mark":
            window["killed_at"] = float(command[1])
            for v in viewers:
                v.peers_at_mark = len(v.counters)
        elif command[0] == "stop":
            break
    stopped = time.time()
    await asyncio.sleep(0.1)  # the follow loops copy the last decoded frames' times (every 0.05 s)
    t0, t1 = window.get("t0", 0.0), window.get("t1", stopped)
    per_viewer = []
    for v, (r0, l0), (r1, l1) in zip(viewers, window.get("stats0", []), window.get("stats1", []), strict=False):
        frames = [t for t in v.frame_times if t0 <= t <= t1]
        fps = (len(frames) - 1) / (frames[-1] - frames[0]) if len(frames) > 1 else 0.0
        got, lost = r1 - r0, l1 - l0
        killed = window.get("killed_at")
        after = [t for t in v.new_peer_frames if killed is not None and t > killed]
        per_viewer.append({
            "mode": "decode", "node": v.node.hello.node if v.node is not None and v.error is None else None,
            "fps": round(fps, 2), "packets": max(0, got),
            "loss_pct": round(100 * lost / (got + lost), 3) if got + lost > 0 else None,
            "recovery_s": round(after[0] - killed, 3) if after and killed is not None else None,
            "mark_gap_ms": frame_gap_ms(v.frame_times, killed, stopped) if killed is not None else None,
            "stall_at_stop_ms": stall_ms(v.frame_times, stopped),
            "moves": v.node.moves if v.node is not None else 0,
            "rejoins": v.viewing.rejoins if v.viewing is not None else 0,
            "ended": (v.viewing.ended or {}).get("reason") if v.viewing is not None else None,
            "error": v.error,
            "frames": [[round(t, 6), p] for t, p in zip(v.frame_times, v.frame_pts, strict=True) if t0 <= t <= t1],
        })
    say("result", viewers=per_viewer)
    for task in tasks:
        task.cancel()
    for v in viewers:
        for closer in (v.viewing, v.node, v.api):
            if closer is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(closer.close(), 10)


async def publish(args: argparse.Namespace) -> None:
    width, height = (int(x) for x in args.size.split("x"))
    async with ApiClient(args.api, timeout_s=120) as api:
        await patiently(api.login, args.email, args.password)
        node = NodeClient(args.api, api.token_source(args.room, "broadcaster"), resume_window_s=30)
        steps: list[tuple[float, str]] = []
        node.tracer = lambda step, fields: steps.append((time.time(), step))
        await node.open()
        pattern = PacedPattern(width, height)
        show = await publish_show(node, args.room, [pattern])
        try:
            async with asyncio.timeout(60):  # the media must flow before viewers wait for frames
                while show.peer.pc.connectionState != "connected":  # noqa: ASYNC110 (aiortc's state, no event)
                    await asyncio.sleep(0.1)
        except TimeoutError:
            say("ready", node=node.hello.node, error=f"publisher not connected ({show.peer.pc.connectionState})")
        else:
            say("ready", node=node.hello.node)
        marks: dict[str, tuple[int, float]] = {}
        async for command in commands():
            if command[0] in ("start", "window"):
                marks[command[0]] = (pattern.frames, time.monotonic())
            elif command[0] == "stop":
                break
        (n0, t0), (n1, t1) = marks.get("start", (0, 0.0)), marks.get("window", (0, 0.0))
        say("result", node=node.hello.node, rejoins=show.rejoins, moves=node.moves, steps=steps,
            fps=round((n1 - n0) / (t1 - t0), 2) if t1 > t0 else None)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(show.close(), 10)
        await node.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster_clients")
    sub = parser.add_subparsers(dest="role", required=True)
    pub = sub.add_parser("publish")
    pub.add_argument("--api", required=True)
    pub.add_argument("--email", required=True)
    pub.add_argument("--password", required=True)
    pub.add_argument("--room", required=True)
    pub.add_argument("--size", default="320x240")
    add_viewer_arguments(sub.add_parser("view"))
    args = parser.parse_args(argv)
    asyncio.run(publish(args) if args.role == "publish" else view(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
