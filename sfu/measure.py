"""``python -m sfu.measure --viewers N --seconds S --json PATH``: server CPU per forwarded packet.

Stopgap until signaling's /ws exists: starts a :class:`sfu.pool.WorkerPool` (its own worker
processes, the entry the node uses), one aiortc publisher (640x480 30 fps VP8 + Opus) and N viewers
in this process. Viewers finish ICE/DTLS with aiortc and then only count RTP (no decoding), except
``--sample`` of them that decode every frame. Only the worker processes' CPU is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from aiortc import AudioStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription, VideoStreamTrack

from sfu import aiortc_private
from sfu.pool import WorkerPool
from sfu.types import PeerId
from switchboard.ids import RoomId, UserId

ROOM = RoomId("bench")


def proc_cpu_s(pid: int) -> float:
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class CountingViewer:
    """Counts RTP per SSRC (received and sequence span) without decoding."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.seen: dict[int, list[int]] = {}

    def on_rtp(self, data: bytes) -> None:
        ssrc = int.from_bytes(data[8:12], "big")
        seq = (data[2] << 8) | data[3]
        s = self.seen.get(ssrc)
        if s is None:
            self.seen[ssrc] = [1, seq, seq, 0]  # received, first, last, cycles
            return
        s[0] += 1
        if (seq - s[2]) & 0xFFFF < 0x8000:
            if seq < s[2]:
                s[3] += 0x10000
            s[2] = seq

    def loss_pct(self) -> float:
        worst = 0.0
        for received, first, last, cycles in self.seen.values():
            expected = cycles + last - first + 1
            worst = max(worst, 100.0 * max(0, expected - received) / expected)
        return worst


class DecodingViewer:
    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.frames = 0
        self.first: float | None = None
        self.started = time.monotonic()
        self.tasks: list[asyncio.Task[None]] = []

        @self.pc.on("track")
        def on_track(track: Any) -> None:
            if track.kind == "video":
                self.tasks.append(asyncio.ensure_future(self.pull(track)))

    async def pull(self, track: Any) -> None:
        try:
            while True:
                await track.recv()
                self.frames += 1
                if self.first is None:
                    self.first = time.monotonic()
        except Exception:
            return


async def join(pool: WorkerPool, peer: str, viewer: Any, counting: bool) -> None:
    offer = await pool.subscribe(ROOM, PeerId(peer), UserId(peer))
    await viewer.pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
    if counting:
        for tr in viewer.pc.getTransceivers():
            aiortc_private.hook_dtls(tr.receiver.transport, viewer.on_rtp, lambda data: None)
    await viewer.pc.setLocalDescription(await viewer.pc.createAnswer())
    await pool.accept_answer(ROOM, PeerId(peer), viewer.pc.localDescription.sdp)


async def measure(viewers: int, seconds: float, sample: int, workers: int) -> dict[str, Any]:
    pool = WorkerPool(workers=workers, addresses=("127.0.0.1",))
    await pool.start()
    pub = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    counting = [CountingViewer() for _ in range(max(0, viewers - sample))]
    decoding = [DecodingViewer() for _ in range(min(sample, viewers))]
    try:
        pub.addTrack(_moving_video())
        pub.addTrack(AudioStreamTrack())
        await pub.setLocalDescription(await pub.createOffer())
        answer = await pool.publish(ROOM, PeerId("pub"), UserId("pub"), pub.localDescription.sdp)
        await pub.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        for _ in range(200):
            if len((await pool.room_stats(ROOM)).producers) == 2:
                break
            await asyncio.sleep(0.05)
        for i, v in enumerate(counting):
            await join(pool, f"c{i}", v, True)
        for i, dv in enumerate(decoding):
            dv.started = time.monotonic()
            await join(pool, f"d{i}", dv, False)
        await asyncio.sleep(3.0)  # warm-up: ICE, DTLS, keyframe, encoder bitrate ramp
        pids = pool.pids()
        c0 = await pool.worker_counters()
        cpu0 = sum(proc_cpu_s(p) for p in pids)
        frames0 = [d.frames for d in decoding]
        t0 = time.monotonic()
        await asyncio.sleep(seconds)
        elapsed = time.monotonic() - t0
        cpu1 = sum(proc_cpu_s(p) for p in pids)
        c1 = await pool.worker_counters()
        forwarded = sum(b["forwarded"] - a["forwarded"] for a, b in zip(c0, c1, strict=True))
        fps = [(d.frames - f0) / elapsed for d, f0 in zip(decoding, frames0, strict=True)]
        firsts = sorted((d.first - d.started) * 1000 for d in decoding if d.first is not None)
        return {
            "viewers": viewers,
            "seconds": seconds,
            "workers": len(pids),
            "packets_forwarded_per_s": round(forwarded / elapsed, 1),
            "server_us_per_packet": round((cpu1 - cpu0) * 1e6 / max(1, forwarded), 2),
            "server_cpu_pct": round(100 * (cpu1 - cpu0) / elapsed, 1),
            "viewer_loss_pct_max": round(max([v.loss_pct() for v in counting] or [0.0]), 3),
            "viewer_fps_min": round(min(fps), 1) if fps else None,
            "first_frame_ms_p95": round(firsts[min(len(firsts) - 1, int(0.95 * len(firsts)))], 1) if firsts else None,
            "server_rss_mb": round(sum(proc_rss_mb(p) for p in pids), 1),
            "malformed_dropped": sum(c["malformed"] for c in c1),
        }
    finally:
        for dv in decoding:
            for t in dv.tasks:
                t.cancel()
        for v in [*counting, *decoding]:
            await v.pc.close()
        await pub.close()
        await pool.close()


def _moving_video() -> VideoStreamTrack:
    import numpy as np
    from av import VideoFrame

    class Moving(VideoStreamTrack):
        n = 0

        async def recv(self) -> VideoFrame:
            pts, time_base = await self.next_timestamp()
            img = np.random.default_rng(self.n // 15).integers(0, 255, (480, 640, 3), dtype=np.uint8)
            img[:, (self.n * 8) % 624 :][:, :16] = 255
            self.n += 1
            frame = VideoFrame.from_ndarray(img, format="bgr24")
            frame.pts, frame.time_base = pts, time_base
            return frame

    return Moving()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sfu.measure")
    parser.add_argument("--viewers", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sample", type=int, default=2, help="viewers that decode every frame")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    import uvloop

    result = uvloop.run(measure(args.viewers, args.seconds, args.sample, args.workers))
    line = json.dumps(result)
    print(line)
    if args.json is not None:
        args.json.write_text(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
