"""``bench cluster``'s cascade figure: edge vs origin arrival of the same frame (``cascade_added_latency_ms_p99``)
beside the same between two origin viewers (``origin_viewers_spread_ms_p99``, the floor), from the
viewers' frames (decoded, or counted: their marker packet's arrival, the kernel's receive time of it),
matched by RTP timestamp (:func:`align`)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from bench.probes import pct


def align(ref: list[list[float]], other: list[list[float]]) -> list[float]:
    """Arrival differences (ms, ``other`` minus ``ref``) of the frames both viewers decoded, matched by
    RTP timestamp. Each viewer's consumer adds a random constant to the timestamps: the difference
    between the two constants is among the most common differences of their timestamps. A publisher
    with a steady frame rate makes every shift by whole frames as common, so of those the one whose
    frames arrive closest in time is taken: a cascade adding more than half a frame interval (16 ms at
    30 fps) would be read as less."""
    if not ref or not other:
        return []
    votes = Counter((int(p) - int(q)) & 0xFFFFFFFF for _, p in other[:30] for _, q in ref)
    top = votes.most_common(1)[0][1]
    if top < 5:
        return []
    arrived = {int(q): t for t, q in ref}
    best: list[float] = []
    for shift, count in votes.items():
        if count * 2 < top:
            continue
        diffs = [1000 * (t - arrived[k]) for t, p in other if (k := (int(p) - shift) & 0xFFFFFFFF) in arrived]
        if len(diffs) >= 5 and (not best or abs(sorted(diffs)[len(diffs) // 2]) < abs(sorted(best)[len(best) // 2])):
            best = diffs
    return best


def cascade_latency(results: list[dict[str, Any]], placed: list[str | None], origin: str) -> dict[str, Any]:
    """Edge vs origin arrival of the same frame: each edge viewer's frames against an origin viewer's
    of the same kind (decoded, or counted) in the same load generator process when there is one (both
    read by one event loop: the time that process waited for a core, on this shared box, is in
    both), else the first origin viewer's; p99 over every matched frame. The same between origin
    viewers and their reference is the floor (the noise of the fan-out order and of the box). None
    without viewers on both."""
    kind = "count" if any(v.get("mode") == "count" for v in results) else "decode"
    frames = [(v.get("group", 0), n, v.get("frames") or []) for v, n in zip(results, placed, strict=False)
              if v.get("frames") and v.get("mode", "decode") == kind]
    refs: dict[int, list[list[float]]] = {}
    for group, n, f in frames:
        if n == origin:
            refs.setdefault(group, f)
    if not refs or all(n == origin for _, n, _ in frames):
        return {"cascade_added_latency_ms_p99": None}
    first = next(iter(refs.values()))
    added = [d for g, n, f in frames if n != origin for d in align(refs.get(g, first), f)]
    floor = [d for g, n, f in frames if n == origin and f is not refs[g] for d in align(refs[g], f)]
    return {"cascade_added_latency_ms_p99": pct(added, 0.99), "cascade_added_latency_ms_p50": pct(added, 0.5),
            "origin_viewers_spread_ms_p99": pct(floor, 0.99), "origin_viewers_spread_ms_p50": pct(floor, 0.5),
            "cascade_frames_matched": len(added),
            **arrival_clock(results, kind), **kernel_only(results, placed, origin, kind)}


def kernel_only(results: list[dict[str, Any]], placed: list[str | None], origin: str,
                 kind: str) -> dict[str, Any]:
    """With a ``mixed`` arrival clock: the cascade's added latency over the frames the kernel stamped
    on both sides only (a frame stamped by the load generator's loop carries its lateness too), beside
    the figure above, which keeps every frame."""
    if kind != "count" or not any(v.get("frames_loop_ts") for v in results):
        return {}
    kept = []
    for v in results:
        loop = set(v.get("frames_loop_ts") or [])
        kept.append({**v, "frames": [f for f in v.get("frames") or [] if f[1] not in loop], "frames_loop_ts": []})
    sub = cascade_latency(kept, placed, origin)
    return {"cascade_added_latency_ms_p99_kernel_stamped": sub.get("cascade_added_latency_ms_p99"),
            "cascade_added_latency_ms_p50_kernel_stamped": sub.get("cascade_added_latency_ms_p50")}


def arrival_clock(results: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """Which clock stamped the frames compared: ``kernel`` (counting viewers: the socket's receive
    time, ``SIOCGSTAMPNS``), ``time.time`` (read by the viewer's event loop: the kernel gave none),
    ``mixed``, or ``decoder`` (decoding viewers: when the frame came out of the decoder)."""
    if kind != "count":
        return {"arrival_clock": "decoder"}
    kernel = sum(v.get("frames_kernel_stamped", 0) for v in results if v.get("mode") == "count")
    loop = sum(v.get("frames_loop_stamped", 0) for v in results if v.get("mode") == "count")
    name = "mixed" if kernel and loop else "kernel" if kernel else "time.time"
    pct = round(100 * kernel / (kernel + loop), 2) if kernel + loop else None
    return {"arrival_clock": name, "arrival_kernel_pct": pct}
