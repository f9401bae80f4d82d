"""The counting viewers of ``python -m bench cluster``: a group of viewers on the SDK, as one process.

    python -m sfu.cluster_viewers --api URL --room R --first I --count K --tag T

Each viewer signs up and in through the control API, asks it for a room token (the answer names the
node: placement), connects with the SDK's ``NodeClient`` and joins with ``view_show``, so after a
lost node it follows the SDK (asks the API again, joins again on a new peer connection). What it
does not do is decode: every peer connection the SDK makes (``view_show(on_peer=...)``, the first and
each rejoin's) is hooked before it negotiates, and its RTP is counted, never decoded. Until ICE is up
the decrypted packets are taken from aiortc's DTLS transport (``hook_dtls``); once connected, SRTP is
counted at the socket (``count_incoming_rtp``: the RTP header is clear), each datagram stamped with
the kernel's arrival time, and a REMB is sent as aiortc's receiver would (``SocketRemb``, fed those
times: aiortc's estimator rewritten for less CPU, the same REMBs, ``sfu.aiortc_private.rate``). It
lives here, not in bench/, because both touch aiortc internals
(``sfu.aiortc_private``); ``bench.cluster_clients view`` is the decoding variant, same line protocol.

Per viewer: loss from sequence gaps of each media SSRC (before retransmission: RTX payloads are
encrypted), fps from marker bits (frame ends) of the video SSRC, each frame's arrival (its marker
packet: the kernel's receive time, or ``time.time()`` where the kernel gave none, counted in
``frames_kernel_stamped``/``frames_loop_stamped``) with its RTP timestamp for the cascade latency, and
the first frame of a peer connection made after ``mark T`` (a node was killed or told to drain at unix
time T) for recovery, and the longest wait between two frames from T to ``stop`` over all its peer
connections (``mark_gap_ms``, :func:`bench.cluster_drain.frame_gap_ms`).

Line protocol with the bench: ``{"event": "ready", ...}`` once joined; then ``start``, ``window``,
``mark T``, ``stop`` on stdin; ``{"event": "result", "viewers": [...]}`` at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import re
import sys
import time
from typing import Any

from bench.cluster_clients import add_viewer_arguments, say, viewer_node
from bench.cluster_drain import frame_gap_ms, stall_ms
from sfu import aiortc_private
from switchboard_client import ApiClient, NodeClient, view_show
from switchboard_client.peer import Peer
from switchboard_client.show import Viewing

Step = tuple[float, str, dict[str, Any]]
"""(unix time, step, fields) of ``NodeClient.tracer``."""


def recovery_steps(killed: float, steps: list[Step], peers: list[PeerCount]) -> dict[str, Any] | None:
    """When each step of one viewer's way back after the kill happened (seconds after it): the socket
    closed (``lost``), the token request the viewer connected with (``asked``, ``token``), its
    ``hello`` on the new node, its ``show.join`` answered (``joined``), its show's ``offer`` (the
    subscribe, admission on the new node's worker included) and its ``answered``, then on the new peer
    connection ICE, DTLS, the first RTP and the first frame; with what went wrong meanwhile (tokens
    naming the lost node again, refused or failed connects, paced subscribes). None: no loss seen."""
    after = [s for s in steps if s[0] >= killed]
    lost = next((s for s in after if s[1] == "socket_lost"), None)
    if lost is None:
        return None
    since = [s for s in after if s[0] >= lost[0]]
    hello = next((s for s in since if s[1] == "hello"), None)
    upto = [s for s in since if hello is None or s[0] <= hello[0]]
    tokens = [s for s in upto if s[1] == "token"]
    asked = [s for s in upto if s[1] == "token_asked"]
    then = [s for s in since if hello is not None and s[0] >= hello[0]]
    joined = next((s for s in then if s[1] == "show_joined"), None)
    offer = next((s for s in then if s[1] == "offer"), None)
    answered = next((s for s in then if s[1] == "answered"), None)
    framed = next((p for p in peers if p.frames and p.frames[-1][0] > killed), None)
    first = next((t for t, _, _ in framed.frames if t > killed), None) if framed else None
    marks = {"lost": lost[0], "asked": asked[-1][0] if asked else None, "token": tokens[-1][0] if tokens else None,
             "hello": hello[0] if hello else None, "joined": joined[0] if joined else None,
             "offer": offer[0] if offer else None,
             "answered": answered[0] if answered else None,
             "ice": framed.ice_at if framed else None, "dtls": framed.connected_at if framed else None,
             "rtp": framed.first_rtp_at if framed else None, "frame": first}
    return {"at": {k: round(t - killed, 3) if t is not None else None for k, t in marks.items()},
            "dead_tokens": sum(1 for s in tokens if s[2].get("url") == lost[2].get("url") and not s[2].get("held")),
            "held": bool(tokens and tokens[-1][2].get("held")),
            "tokens": len(tokens), "token_failed": sum(1 for s in upto if s[1] == "token_failed"),
            "connect_failed": sum(1 for s in upto if s[1] == "connect_failed"),
            "ws_refused": sum(1 for s in upto if s[1] == "ws_refused"),
            "subscribe_paced": sum(1 for s in then if s[1] == "subscribe_paced"),
            "not_found": sum(1 for s in then if s[1] == "show_not_found"),
            "node": hello[2].get("node") if hello else None}


def after_kill(v: Viewer, mark: tuple[int, int], stop: tuple[int, int], killed: float,
               stopped: float) -> dict[str, Any]:
    """What a viewer got from the kill to ``stop`` (the killed node's burst landing beside it, for a
    viewer of another node): its loss, fps, and the longest wait between two frames (a stall)."""
    got, expected = stop[0] - mark[0], stop[1] - mark[1]
    times = sorted(t for t, _, _ in v.frames() if killed <= t <= stopped)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return {"loss_pct": round(100 * max(0, expected - got) / expected, 3) if expected > 0 else None,
            "fps": round((len(times) - 1) / (times[-1] - times[0]), 2) if len(times) > 1 else 0.0,
            "gap_ms_max": round(1000 * max(gaps), 1) if gaps else None}


def _media_types(sdp: str) -> tuple[set[int], set[int]]:
    """(video media payload types, RTX payload types) of an SDP."""
    video: set[int] = set()
    rtx: set[int] = set()
    for section in sdp.split("\nm=")[1:]:
        for pt, codec in re.findall(r"a=rtpmap:(\d+) ([\w-]+)/", section):
            if codec.lower() == "rtx":
                rtx.add(int(pt))
            elif section.startswith("video"):
                video.add(int(pt))
    return video, rtx


class PeerCount:
    """The RTP one peer connection received, counted from the clear header."""

    def __init__(self, peer: Peer, framed: asyncio.Event) -> None:
        self.peer = peer
        self.framed = framed
        """Set at the first video frame (of any of the viewer's peer connections)."""
        self.video: set[int] = set()
        self.rtx: set[int] = set()
        self.streams: dict[int, list[int]] = {}
        """Media SSRC -> [received, first seq, highest seq, wrap cycles]."""
        self.frames: list[tuple[float, int, bool]] = []
        """(unix arrival time, RTP timestamp, whether the kernel stamped it) of each video frame's marker
        packet. Counted at the socket, the time is the kernel's (``SIOCGSTAMPNS``): what a browser's
        network thread would see, not when this process's event loop got round to the datagram."""
        self.rtx_packets = 0
        self.created_at = time.time()
        self.ice_at: float | None = None
        """When ICE connected (unix time), then DTLS (``connected_at``), then the first RTP packet."""
        self.connected_at: float | None = None
        self.first_rtp_at: float | None = None
        self.remb: aiortc_private.SocketRemb | None = None
        self._hooked: set[int] = set()
        peer.pc.on("track", self._drop_at_dtls)
        peer.pc.on("connectionstatechange", self._at_socket)
        peer.pc.on("iceconnectionstatechange", self._ice)

    def _ice(self) -> None:
        if self.ice_at is None and self.peer.pc.iceConnectionState in ("connected", "completed"):
            self.ice_at = time.time()

    def _drop_at_dtls(self, track: Any) -> None:
        """Until connected: decrypted RTP is counted here and never reaches aiortc's decoder."""
        for tr in self.peer.pc.getTransceivers():
            dtls = tr.receiver.transport
            if id(dtls) not in self._hooked:
                self._hooked.add(id(dtls))
                aiortc_private.hook_dtls(dtls, self.on_rtp, lambda data: None)

    def _at_socket(self) -> None:
        if self.peer.pc.connectionState != "connected" or self.remb is not None:
            return
        self.connected_at = time.time()
        self.video, self.rtx = _media_types(self.peer.pc.remoteDescription.sdp)
        self.remb = aiortc_private.SocketRemb.of(self.peer.pc)
        with contextlib.suppress(RuntimeError):  # not nominated (closing): the DTLS hook still counts
            aiortc_private.count_incoming_rtp(self.peer.pc, self.on_rtp)

    def on_rtp(self, data: bytes, arrival: float | None = None) -> None:
        """One RTP datagram; ``arrival``: the kernel's arrival time (None: now, by ``time.time()``)."""
        kernel = arrival is not None
        at = arrival if arrival is not None else time.time()
        if self.first_rtp_at is None:
            self.first_rtp_at = at
        if self.remb is not None:
            self.remb.on_rtp(data, int(at * 1000))
        pt = data[1] & 0x7F
        if pt in self.rtx:
            self.rtx_packets += 1
            return
        ssrc = int.from_bytes(data[8:12], "big")
        seq = (data[2] << 8) | data[3]
        s = self.streams.get(ssrc)
        if s is None:
            self.streams[ssrc] = [1, seq, seq, 0]
        else:
            s[0] += 1
            if (seq - s[2]) & 0xFFFF < 0x8000:
                if seq < s[2]:
                    s[3] += 0x10000
                s[2] = seq
        if data[1] & 0x80 and pt in self.video:
            self.frames.append((at, int.from_bytes(data[4:8], "big"), kernel))
            self.framed.set()
            if not self.peer.media.is_set():  # aiortc never sees these packets: a drain's move waits for this
                self.peer.media.set()

    def totals(self) -> tuple[int, int]:
        """(received, expected) media packets so far."""
        received = expected = 0
        for got, first, highest, cycles in self.streams.values():
            received += got
            expected += cycles + highest - first + 1
        return received, expected


def state(v: Viewer) -> str | None:
    """The connection state of the viewer's current peer connection (the viewing's: a move's new one
    that failed and closed is not it), else of its last one."""
    if v.viewing is not None:
        return str(v.viewing.peer.pc.connectionState)
    return v.peers[-1].peer.pc.connectionState if v.peers else None


class Viewer:
    def __init__(self, index: int, api: ApiClient) -> None:
        self.index = index
        self.api = api
        self.node: NodeClient | None = None
        self.viewing: Viewing | None = None
        self.peers: list[PeerCount] = []
        self.error: str | None = None
        self.framed = asyncio.Event()
        self.told: list[str] = []
        """``show.peer_closed`` / ``show.media_stopped`` the node sent (type: reason)."""
        self.steps: list[Step] = []
        """The SDK's connect and rejoin steps (``NodeClient.tracer``), timed."""
        self._listener: asyncio.Task[None] | None = None

    def listen(self) -> None:
        """Notes what the node says about this viewer's media (the SDK does not act on it)."""
        assert self.node is not None
        stream = self.node.events("show.peer_closed", "show.media_stopped")

        async def read() -> None:
            async for event in stream:
                self.told.append(f"{event['type']}: {event.get('reason')}")

        self._listener = asyncio.create_task(read())

    def on_peer(self, peer: Peer) -> None:
        self.peers.append(PeerCount(peer, self.framed))

    def totals(self) -> tuple[int, int]:
        got = [p.totals() for p in self.peers]
        return sum(r for r, _ in got), sum(e for _, e in got)

    def frames(self, since_peer: int = 0) -> list[tuple[float, int, bool]]:
        return [f for p in self.peers[since_peer:] for f in p.frames]


async def join(v: Viewer, args: argparse.Namespace, gate: asyncio.Semaphore) -> None:
    step = "sign-up and connect"
    async with gate:
        try:
            v.node = await viewer_node(v.api, args.api, args.tag, v.index, args.room)
            v.node.tracer = lambda step, fields: v.steps.append((time.time(), step, fields))
            v.listen()
            step = "join"
            v.viewing = await view_show(v.node, args.room, on_peer=v.on_peer)
            step = "first frame"
            async with asyncio.timeout(60):
                await v.framed.wait()
        except Exception as exc:
            v.error = f"{step}: {exc!r}"


async def run(args: argparse.Namespace) -> None:
    gate = asyncio.Semaphore(args.in_flight)
    viewers = [Viewer(args.first + i, ApiClient(args.api, timeout_s=120)) for i in range(args.count)]
    await asyncio.gather(*(join(v, args, gate) for v in viewers))
    say("ready", joined=sum(1 for v in viewers if v.error is None), errors=[v.error for v in viewers if v.error][:3],
        nodes=[v.node.hello.node if v.node is not None and v.error is None else None for v in viewers])
    t0 = t1 = killed = 0.0
    counts0: list[tuple[int, int]] = []
    counts1: list[tuple[int, int]] = []
    at_mark: list[int] = []
    counts_mark: list[tuple[int, int]] = []
    while line := (await asyncio.to_thread(sys.stdin.readline)).split():
        if line[0] == "start":
            t0, counts0 = time.time(), [v.totals() for v in viewers]
        elif line[0] == "window":
            t1, counts1 = time.time(), [v.totals() for v in viewers]
        elif line[0] == "mark":
            killed, at_mark = float(line[1]), [len(v.peers) for v in viewers]
            counts_mark = [v.totals() for v in viewers]
        elif line[0] == "stop":
            break
    stopped, counts_stop = time.time(), [v.totals() for v in viewers]
    t1 = t1 or stopped
    counts1 = counts1 or counts_stop
    results = []
    for i, v in enumerate(viewers):
        (r0, e0), (r1, e1) = counts0[i] if counts0 else (0, 0), counts1[i]
        got, expected = r1 - r0, e1 - e0
        frames = [f for f in v.frames() if t0 <= f[0] <= t1]
        fps = (len(frames) - 1) / (frames[-1][0] - frames[0][0]) if len(frames) > 1 else 0.0
        after = [t for t, _, _ in v.frames(at_mark[i]) if t > killed] if at_mark else []
        kernel = sum(1 for f in frames if f[2])
        ok = v.node is not None and v.error is None
        results.append({
            "mode": "count", "node": v.node.hello.node if ok and v.node is not None else None,
            "fps": round(fps, 2), "packets": max(0, got),
            "loss_pct": round(100 * max(0, expected - got) / expected, 3) if expected > 0 else None,
            "rtx_packets": sum(p.rtx_packets for p in v.peers),
            "recovery_s": round(after[0] - killed, 3) if after else None,
            "moves": v.node.moves if v.node is not None else 0,
            "rejoins": v.viewing.rejoins if v.viewing is not None else 0,
            "ended": (v.viewing.ended or {}).get("reason") if v.viewing is not None else None,
            "error": v.error, "told": v.told[:3],
            "state": state(v), "peers": len(v.peers),
            "frames": [[round(t, 6), ts] for t, ts, _ in frames],
            "frames_kernel_stamped": kernel, "frames_loop_stamped": len(frames) - kernel,
            "frames_loop_ts": [ts for _, ts, k in frames if not k],
            "recovery": recovery_steps(killed, v.steps, v.peers[at_mark[i]:]) if at_mark else None,
            "after_kill": after_kill(v, counts_mark[i], counts_stop[i], killed, stopped) if counts_mark else None,
            "mark_gap_ms": frame_gap_ms((t for t, _, _ in v.frames()), killed, stopped) if at_mark else None,
            "stall_at_stop_ms": stall_ms((t for t, _, _ in v.frames()), stopped),
        })
    say("result", viewers=results)
    for v in viewers:
        for closer in (v.viewing, v.node, v.api):
            if closer is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(closer.close(), 10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sfu.cluster_viewers")
    add_viewer_arguments(parser)
    args = parser.parse_args(argv)
    import uvloop

    aiortc_private.use_quick_rate_estimation()  # the viewers' answers build receivers: the same REMB, less CPU

    uvloop.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
