"""A room's buffered RTP to one media file, by depacketizing and remuxing: never decoding.

VP8 (+ Opus) goes to WebM, H.264 (+ Opus) to Matroska. Timestamps come from RTP: each track's
timestamps are mapped to the node's clock (the arrival of its least-delayed packet fixes the
offset); tracks of one publisher share that offset through its RTCP sender reports (their NTP
clock is common), so its audio and video stay in sync. The window (:func:`sfu.clips.window`) starts
at a keyframe of the first video track near ``seconds`` before the newest packet and lasts 28-31 s
for 30 s; every other track is cut to the same window.

Blocking (PyAV): call :func:`write_clip` in a thread.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction

import av

from sfu.clips import Clip, TrackSnapshot, window
from sfu.depacketize import Drops, Frame, Packet, frames, h264_size
from sfu.rtp import VP8, seq_delta

NTP_UNIT = float(1 << 32)


class NothingToClip(Exception):
    """No buffered media to make a clip from."""


def _unwrap(entries: list[tuple[float, int, int, int, bytes]]) -> list[tuple[float, int, int, int, bytes]]:
    """Entries with sequence and timestamp unwrapped, in sequence order, duplicates (RTX) removed."""
    out: dict[int, tuple[float, int, int, int, bytes]] = {}
    seq = ts = None
    for arrival, s, t, marker, payload in entries:
        if seq is None or ts is None:
            seq, ts = s, t
        else:
            seq += seq_delta(s, seq & 0xFFFF)
            d = (t - (ts & 0xFFFFFFFF)) & 0xFFFFFFFF
            ts += d - (1 << 32) if d >= 1 << 31 else d
        out.setdefault(seq, (arrival, seq, ts, marker, payload))
    return [out[k] for k in sorted(out)]


@dataclass
class _Track:
    snap: TrackSnapshot
    frames: list[Frame]
    ntp_ts: tuple[float, int] | None
    """(NTP seconds, unwrapped RTP timestamp) of the last SR, or None: arrival times only."""
    offset: float = 0.0

    def sender_time(self, ts: int) -> float:
        """Seconds on the sender's clock (NTP if known, else the RTP clock alone)."""
        if self.ntp_ts is None:
            return ts / self.snap.clock_rate
        ntp, ref = self.ntp_ts
        return ntp + (ts - ref) / self.snap.clock_rate

    def time(self, ts: int) -> float:
        """Seconds on the node's clock."""
        return self.sender_time(ts) + self.offset


def _track(snap: TrackSnapshot, drops: Drops) -> tuple[_Track, list[tuple[float, int, int, int, bytes]]]:
    entries = _unwrap(snap.entries)
    packets: list[Packet] = [(s, t, m, p) for _, s, t, m, p in entries]
    ntp_ts = None
    if snap.sender_report is not None and entries:
        ntp, rtp_ts, _ = snap.sender_report
        last = entries[-1][2]
        d = (rtp_ts - (last & 0xFFFFFFFF)) & 0xFFFFFFFF
        ntp_ts = (ntp / NTP_UNIT, last + (d - (1 << 32) if d >= 1 << 31 else d))
    return _Track(snap, frames(snap.mime_type, packets, drops), ntp_ts), entries


def _align(tracks: list[_Track], entries: list[list[tuple[float, int, int, int, bytes]]]) -> None:
    """Offsets to the node's clock: the least-delayed packet's; one per publisher when its SRs let
    its tracks share a clock, else one per track."""
    per_track = [min(e[0] - t.sender_time(e[2]) for e in es) for t, es in zip(tracks, entries, strict=True)]
    shared: dict[str, float] = {}
    for t, off in zip(tracks, per_track, strict=True):
        if t.ntp_ts is not None:
            shared[t.snap.peer_id] = min(off, shared.get(t.snap.peer_id, off))
    for t, off in zip(tracks, per_track, strict=True):
        t.offset = shared[t.snap.peer_id] if t.ntp_ts is not None else off


def _cut(tracks: list[_Track], seconds: float) -> tuple[float, float]:
    """Trim every track's frames to the clip's window (:func:`sfu.clips.window`); returns (start,
    stop) on the node's clock."""
    end = max(t.time(t.frames[-1].timestamp) for t in tracks)
    videos = [t for t in tracks if t.snap.kind == "video"]
    keys = [videos[0].time(f.timestamp) for f in videos[0].frames if f.keyframe] if videos else []
    start, stop = window(keys, end, seconds)
    for t in tracks:
        kept = [f for f in t.frames if start - 0.001 <= t.time(f.timestamp) <= stop]
        if t.snap.kind == "video":
            first = next((i for i, f in enumerate(kept) if f.keyframe), len(kept))
            kept = kept[first:]
        t.frames = kept
    return start, stop


def _vp8_size(frame: bytes) -> tuple[int, int]:
    """Width and height from a VP8 key frame header (RFC 6386 9.1)."""
    if len(frame) >= 10 and frame[3:6] == b"\x9d\x01\x2a":
        return int.from_bytes(frame[6:8], "little") & 0x3FFF, int.from_bytes(frame[8:10], "little") & 0x3FFF
    return 0, 0


def _mux(tracks: list[_Track], start: float, webm: bool) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format="webm" if webm else "matroska") as out:
        streams = []
        for t in tracks:
            rate = t.snap.clock_rate
            if t.snap.kind == "video":
                width, height = (_vp8_size(t.frames[0].data) if t.snap.mime_type.lower() == VP8
                                 else h264_size(t.frames[0].data) or (0, 0))
                if not width or not height:
                    raise NothingToClip(f"the size of track {t.snap.producer_id} does not parse")
                codec = "vp8" if t.snap.mime_type.lower() == VP8 else "h264"
                stream = out.add_mux_stream(codec, width=width, height=height, time_base=Fraction(1, rate))
            else:  # an Opus encoder context only for its OpusHead (CodecPrivate); nothing is encoded
                stream = out.add_stream("libopus", rate=48000)
                stream.layout = "stereo" if t.snap.channels >= 2 else "mono"
                stream.time_base = Fraction(1, rate)
            streams.append(stream)
        for t, stream in zip(tracks, streams, strict=True):
            rate, last = t.snap.clock_rate, -1
            for f in t.frames:
                pts = max(last + 1, round((t.time(f.timestamp) - start) * rate))
                last = pts
                packet = av.Packet(f.data)
                packet.stream, packet.pts, packet.dts = stream, pts, pts
                packet.time_base = Fraction(1, rate)
                packet.is_keyframe = f.keyframe
                out.mux(packet)
    return buf.getvalue()


def write_clip(snapshots: list[TrackSnapshot], seconds: float) -> Clip:
    """One file with the last ``seconds`` of every track (VP8/H.264 video, Opus audio)."""
    drops = Drops()
    built = [_track(s, drops) for s in snapshots if s.mime_type.lower() in (VP8, "video/h264", "audio/opus")]
    pairs = [(t, es) for t, es in built if t.frames]
    if not pairs:
        raise NothingToClip("no buffered media in this room")
    tracks = [t for t, _ in pairs]
    _align(tracks, [es for _, es in pairs])
    start, end = _cut(tracks, seconds)
    tracks = [t for t in tracks if t.frames]
    tracks.sort(key=lambda t: t.snap.kind != "video")
    webm = all(t.snap.mime_type.lower() in (VP8, "audio/opus") for t in tracks)
    data = _mux(tracks, start, webm)
    return Clip(data, "video/webm" if webm else "video/x-matroska", end - start, len(tracks), drops.total)
