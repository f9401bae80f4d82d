"""Where a joining viewer's first frame time goes: ``python -m tests.sfu.join_bench`` prints JSON.
(A measurement harness, so it lives in tests/, not in the product package: STYLE.md rule 16.)

One in-process worker, one real aiortc publisher (640x480 VP8), then rounds of ``--viewers`` real
aiortc viewers joining together (subscribe, answer, ICE, DTLS, first decoded frame). Each stage is
the time from the viewer's subscribe call, in ms, p50 and p95 over all viewers of all rounds:
``offer`` (the worker made its offer), ``answered`` (the worker took the answer), ``ice_checking`` /
``ice_completed`` / ``connected`` (the viewer's ICE and DTLS), ``first_rtp`` (first video packet
decrypted by the viewer), ``frame`` (first decoded frame). The viewers share the worker's loop and
process, so the absolute numbers include their own CPU; compare runs of the same sitting.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from sfu import aiortc_private
from sfu.events import MemoryEventSink
from sfu.types import PeerId
from sfu.worker import Worker
from switchboard.ids import RoomId, UserId
from tests.sfu.peers import Viewer, answer_offer, client_pc, start_publisher

ROOM = RoomId("join-bench")
STAGES = ("offer", "answered", "ice_checking", "ice_completed", "connected", "first_rtp", "frame")


async def join(worker: Worker, name: str) -> tuple[Viewer, dict[str, float]]:
    viewer = Viewer(client_pc())
    t0 = time.monotonic()
    marks: dict[str, float] = {}

    @viewer.pc.on("track")
    def on_track(track: Any) -> None:
        viewer.tasks.append(asyncio.ensure_future(viewer._pull(track)))

    @viewer.pc.on("iceconnectionstatechange")
    def on_ice() -> None:
        marks.setdefault(f"ice_{viewer.pc.iceConnectionState}", time.monotonic())

    @viewer.pc.on("connectionstatechange")
    def on_state() -> None:
        marks.setdefault(viewer.pc.connectionState, time.monotonic())

    offer = await worker.subscribe(ROOM, PeerId(name), UserId(f"user-{name}"), hidden=False)
    marks["offer"] = time.monotonic()
    answer = await answer_offer(viewer, offer)
    video_pt = next((int(line.split(":")[1].split()[0]) for line in offer.splitlines()
                     if line.startswith("a=rtpmap:") and "VP8" in line), -1)
    aiortc_private.record_incoming_rtp(
        viewer.pc, lambda data: marks.setdefault("first_rtp", time.monotonic()) if data[1] & 0x7F == video_pt else None)
    await worker.accept_answer(ROOM, PeerId(name), answer)
    marks["answered"] = time.monotonic()
    while viewer.first_frame_at is None and time.monotonic() - t0 < 20:  # noqa: ASYNC110 (aiortc's track task)
        await asyncio.sleep(0.002)
    if viewer.first_frame_at is not None:
        marks["frame"] = viewer.first_frame_at
    return viewer, {k: (t - t0) * 1000 for k, t in marks.items()}


def pct(values: list[float], q: float) -> float | None:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1) if ordered else None


async def run(viewers: int, rounds: int) -> dict[str, Any]:
    worker = Worker(addresses=("127.0.0.1",), events=MemoryEventSink())
    await worker.start()
    await worker.open_room(ROOM)
    pub = await start_publisher(worker, ROOM, "pub", audio=False)
    joined: list[Viewer] = []
    timings: list[dict[str, float]] = []
    try:
        while not worker.routers[ROOM].producers:  # noqa: ASYNC110 (aiortc state)
            await asyncio.sleep(0.05)
        await asyncio.sleep(2)
        for r in range(rounds):
            done = await asyncio.gather(*(join(worker, f"v{r}-{i}") for i in range(viewers)))
            joined += [v for v, _ in done]
            timings += [t for _, t in done]
            await asyncio.sleep(1.5)
        video = next(iter(worker.routers[ROOM].producers.values()))
        return {"bench": "join", "viewers": viewers, "rounds": rounds,
                **{f"{s}_ms_p50": pct([t[s] for t in timings if s in t], 0.5) for s in STAGES},
                **{f"{s}_ms_p95": pct([t[s] for t in timings if s in t], 0.95) for s in STAGES},
                "no_frame": sum(1 for t in timings if "frame" not in t),
                "replayed": getattr(video, "replayed", None), "plis_sent": video.keyframes.sent}
    finally:
        for v in joined:
            await v.close()
        await pub.close()
        await worker.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--viewers", type=int, default=8, help="viewers joining together per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.viewers, args.rounds))))


if __name__ == "__main__":
    main()
