"""``switchboard loadtest``: publishers and viewers of shows against any deployment, built on the SDK.

P publishers (one verified account, one room each) send colour bars; N viewers (fresh accounts,
registered and signed in, unverified: viewers need not be) join the shows round robin, each
measuring its join time (from ``show.join`` to the first decoded frame), its received bitrate
(DTLS transport bytes), its video packet loss and its fps over the run. A progress line is
printed each second; the report is ``report.html`` (inline SVG figures) and ``report.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from switchboard_client.api import ApiClient
from switchboard_client.errors import SwitchboardError
from switchboard_client.load_report import write_html
from switchboard_client.media import FrameCounter, TestPattern
from switchboard_client.node import NodeClient
from switchboard_client.show import Broadcast, Viewing, publish_show, view_show


@dataclass(frozen=True)
class LoadPlan:
    """What to run."""

    url: str
    """The deployment's HTTP root."""
    viewers: int
    publishers: int
    duration_s: float
    """Seconds measured once every viewer has joined (or failed)."""
    email: str
    """A verified account: it owns the publishers' rooms."""
    password: str
    width: int = 320
    height: int = 240
    joins_in_flight: int = 8
    """Viewers joining at once."""
    warmup_s: float = 2.0
    """Seconds between the last join and the window (the first frames come in a burst)."""


@dataclass
class ViewerResult:
    """One viewer's figures."""

    index: int
    room: str
    join_s: float | None = None
    """Seconds from ``show.join`` to the first frame (None: never)."""
    frames: int = 0
    fps: float = 0.0
    bitrate_kbps: float = 0.0
    loss_pct: float = 0.0
    error: str | None = None


@dataclass
class LoadResult:
    plan: dict[str, Any]
    viewers: list[ViewerResult] = field(default_factory=list)
    window_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        joined = [v for v in self.viewers if v.join_s is not None]
        joins = sorted(v.join_s for v in joined if v.join_s is not None)

        def mean(values: list[float]) -> float:
            return round(sum(values) / len(values), 2) if values else 0.0

        return {"viewers": len(self.viewers), "joined": len(joined),
                "failed": sum(1 for v in self.viewers if v.error), "window_s": round(self.window_s, 1),
                "join_p50_s": round(joins[len(joins) // 2], 3) if joins else None,
                "join_p95_s": round(joins[min(len(joins) - 1, int(0.95 * len(joins)))], 3) if joins else None,
                "fps_mean": mean([v.fps for v in joined]), "bitrate_kbps_mean": mean([v.bitrate_kbps for v in joined]),
                "loss_pct_mean": mean([v.loss_pct for v in joined])}


class _Viewer:
    def __init__(self, result: ViewerResult) -> None:
        self.result = result
        self.api: ApiClient | None = None
        self.node: NodeClient | None = None
        self.viewing: Viewing | None = None
        self.counter: FrameCounter | None = None
        self.bytes0 = 0

    async def close(self) -> None:
        if self.counter is not None:
            await self.counter.close()
        for closable in (self.viewing, self.node, self.api):
            if closable is not None:
                with contextlib.suppress(SwitchboardError, OSError):
                    await closable.close()


async def _transport_bytes(viewing: Viewing) -> tuple[int, int, int]:
    """(bytes received, video packets received, video packets lost) of the viewer's peer connection."""
    received = got = lost = 0
    for stats in (await viewing.peer.pc.getStats()).values():
        if stats.type == "transport":
            received += int(getattr(stats, "bytesReceived", 0))
        elif stats.type == "inbound-rtp" and getattr(stats, "kind", "") == "video":
            got += int(stats.packetsReceived)
            lost += max(0, int(stats.packetsLost))
    return received, got, lost


async def _join(plan: LoadPlan, run_id: str, viewer: _Viewer, gate: asyncio.Semaphore) -> None:
    result = viewer.result
    async with gate:
        try:
            email, password = f"loadtest-{run_id}-{result.index}@example.com", secrets.token_urlsafe(12)
            viewer.api = api = ApiClient(plan.url)
            await api.open()
            await api.register(email, password)
            await api.login(email, password)
            viewer.node = node = NodeClient(plan.url, api.token_source(result.room))
            await node.open()
            t0 = time.monotonic()
            async with asyncio.timeout(30):
                viewer.viewing = await view_show(node, result.room)
                viewer.counter = FrameCounter(await viewer.viewing.track("video"))
                await viewer.counter.first_frame()
            result.join_s = round(time.monotonic() - t0, 3)
        except (SwitchboardError, OSError, TimeoutError) as exc:
            result.error = f"{type(exc).__name__}: {exc}"


async def run_load(plan: LoadPlan, progress: Callable[[str], None]) -> LoadResult:
    """Runs the plan; ``progress`` gets a status line about once a second."""
    run_id = secrets.token_hex(4)
    result = LoadResult(plan={k: v for k, v in asdict(plan).items() if k != "password"})
    owner = ApiClient(plan.url)
    shows: list[tuple[NodeClient, Broadcast]] = []
    viewers: list[_Viewer] = []
    try:
        await owner.open()
        await owner.login(plan.email, plan.password)
        for p in range(plan.publishers):
            room = (await owner.create_room(f"loadtest {run_id} #{p + 1}")).room
            node = NodeClient(plan.url, owner.token_source(room, "broadcaster"))
            await node.open()
            shows.append((node, await publish_show(node, room, [TestPattern(plan.width, plan.height)])))
        progress(f"{plan.publishers} publisher(s) live; joining {plan.viewers} viewer(s)")
        viewers = [_Viewer(ViewerResult(i, shows[i % len(shows)][1].room)) for i in range(plan.viewers)]
        result.viewers = [v.result for v in viewers]
        gate = asyncio.Semaphore(plan.joins_in_flight)
        joining = asyncio.gather(*(_join(plan, run_id, v, gate) for v in viewers))
        t0 = time.monotonic()
        while not joining.done():
            await asyncio.wait({joining}, timeout=1.0)
            progress(_line(time.monotonic() - t0, "joining", viewers))
        await joining
        w0 = time.monotonic()
        while (elapsed := time.monotonic() - w0) < plan.warmup_s:
            await asyncio.sleep(min(1.0, plan.warmup_s - elapsed))
            progress(_line(time.monotonic() - w0, "warming", viewers))
        live = [(v, v.viewing, v.counter) for v in viewers if v.viewing is not None and v.counter is not None]
        starts = {id(v): (await _transport_bytes(viewing), counter.count.frames) for v, viewing, counter in live}
        w0 = time.monotonic()
        while (elapsed := time.monotonic() - w0) < plan.duration_s:
            await asyncio.sleep(min(1.0, plan.duration_s - elapsed))
            progress(_line(time.monotonic() - w0, "measuring", viewers))
        result.window_s = time.monotonic() - w0
        for v, viewing, counter in live:
            (bytes0, got0, lost0), frames0 = starts[id(v)]
            bytes1, got1, lost1 = await _transport_bytes(viewing)
            count = counter.count
            v.result.frames = count.frames - frames0
            v.result.fps = round(v.result.frames / result.window_s, 2)
            v.result.bitrate_kbps = round((bytes1 - bytes0) * 8 / result.window_s / 1000, 1)
            sent = (got1 - got0) + (lost1 - lost0)
            v.result.loss_pct = round(100 * (lost1 - lost0) / sent, 2) if sent else 0.0
    finally:
        for v in viewers:
            await v.close()
        for node, show in shows:
            await show.close()
            await node.close()
        await owner.close()
    return result


def _recent_fps(counter: FrameCounter, now: float, window_s: float = 2.0) -> float | None:
    """Frames of the last ``window_s`` seconds per second (None for a viewer younger than a second)."""
    times = counter.count.times
    if not times or now - times[0] < 1.0:
        return None
    span = min(window_s, now - times[0])
    return sum(1 for t in times if t >= now - span) / span


def _line(elapsed: float, phase: str, viewers: list[_Viewer]) -> str:
    joined = [v for v in viewers if v.counter is not None and v.result.join_s is not None]
    failed = sum(1 for v in viewers if v.result.error)
    now = time.monotonic()
    fps = [f for v in joined if v.counter is not None and (f := _recent_fps(v.counter, now)) is not None]
    mean_fps = sum(fps) / len(fps) if fps else 0.0
    return (f"{phase} {elapsed:5.1f} s  viewers {len(joined)}/{len(viewers)} joined, {failed} failed, "
            f"fps {mean_fps:4.1f}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", required=True, help="the deployment's HTTP root, e.g. http://127.0.0.1:8080")
    parser.add_argument("--viewers", type=int, default=10)
    parser.add_argument("--publishers", type=int, default=1)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds measured after the joins")
    parser.add_argument("--email", default=os.environ.get("SWITCHBOARD_EMAIL"),
                        help="a verified account owning the test rooms (or SWITCHBOARD_EMAIL)")
    parser.add_argument("--password", default=os.environ.get("SWITCHBOARD_PASSWORD"),
                        help="its password (or SWITCHBOARD_PASSWORD)")
    parser.add_argument("--size", default="320x240", help="the publishers' video size")
    parser.add_argument("--joins-in-flight", type=int, default=8)
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds between the last join and the window")
    parser.add_argument("--report", type=Path, default=Path("loadtest-report"), help="folder for report.html/json")


def main(args: argparse.Namespace) -> int:
    """``switchboard loadtest``: runs, prints the summary as one JSON line, writes the report."""
    if not args.email or not args.password:
        print("switchboard loadtest: give --email and --password of a verified account", file=sys.stderr)
        return 2
    width, height = (int(x) for x in args.size.split("x"))
    plan = LoadPlan(args.url, args.viewers, args.publishers, args.duration, args.email, args.password,
                    width, height, args.joins_in_flight, args.warmup)
    tty = sys.stderr.isatty()

    def progress(line: str) -> None:
        print(("\r" + line.ljust(79)) if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)

    result = asyncio.run(run_load(plan, progress))
    if tty:
        print(file=sys.stderr)
    args.report.mkdir(parents=True, exist_ok=True)
    summary = result.summary()
    (args.report / "report.json").write_text(json.dumps(
        {"summary": summary, "plan": result.plan, "viewers": [asdict(v) for v in result.viewers]}, indent=1))
    write_html(args.report / "report.html", result.plan, summary, [asdict(v) for v in result.viewers])
    print(json.dumps(summary))
    print(f"report: {args.report / 'report.html'}", file=sys.stderr)
    return 0 if summary["joined"] else 1
