"""The breakdown of ``bench cluster --kill-node``'s recovery: where the killed node's viewers spent the time.

Each counting viewer (``sfu.cluster_viewers``) notes, seconds after the kill, each step of its way
back, from the SDK's trace (``NodeClient.tracer``) and its new peer connection:

- ``lost``: its socket to the killed node closed (the kernel resets the TCP connection at once);
- ``asked`` / ``token``: the token request it finally connected with was sent / answered (before it:
  the SDK's backoff, tokens that named the dead node again while the registry still held it, failed
  connects to it); with the token it held (an alternate of its token answer, no API request:
  ``recovery_viewers_without_api`` counts them) both are the moment it tried that node;
- ``hello``: the new node's ``hello`` (socket admission included: refused connects wait ``retry_after``);
- ``joined``: ``show.join`` answered (the roster, the cascade's pull on an edge that did not have the show);
- ``offer``: ``show.subscribe`` answered with an offer (the worker's join admission: bounded in
  flight, paced by its loop lag; ``unavailable`` answers make the SDK wait ``retry_after``);
- ``answered``: aiortc made the answer and the node took it;
- ``ice``, ``dtls``: the new peer connection's ICE, then DTLS (``connectionState`` connected);
- ``rtp``, ``frame``: its first RTP packet, its first video frame (marker bit): the recovery.

:func:`breakdown` turns them into stages (each the time from the previous step, so a viewer's stages
add up to its recovery) and reports their p50/p95/max over the viewers, with counts of what went wrong.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

STEPS = ("lost", "asked", "token", "hello", "joined", "offer", "answered", "ice", "dtls", "rtp", "frame")
STAGES = {"lost": "detect", "asked": "retry_wait", "token": "token", "hello": "ws_connect", "joined": "show_join",
          "offer": "subscribe", "answered": "answer", "ice": "ice", "dtls": "dtls", "rtp": "first_rtp",
          "frame": "first_frame"}
"""Each step -> the stage that ends with it."""


def _pct(values: list[float], q: float) -> float | None:
    """The ``q`` quantile of ``values`` to the hundredth of a second; None when empty."""
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2) if ordered else None


def stages(at: dict[str, float | None]) -> dict[str, float]:
    """One viewer's stages (seconds): the time from the previous known step to each known step (a
    step earlier than the one before, e.g. ICE done before the node took the answer, counts 0)."""
    out: dict[str, float] = {}
    last = 0.0
    for step in STEPS:
        t = at.get(step)
        if t is None:
            continue
        out[STAGES[step]] = max(0.0, t - last)
        last = max(last, t)
    return out


def breakdown(hit: list[dict[str, Any]]) -> dict[str, Any]:
    """The recovery keys of the bench's JSON, from the killed node's viewers' results."""
    notes = [v["recovery"] for v in hit if v.get("recovery")]
    if not notes:
        return {"recovery_viewers_traced": 0}
    per = [stages(n["at"]) for n in notes]
    names = [STAGES[s] for s in STEPS]

    def q(p: float) -> dict[str, float | None]:
        return {k: _pct([s[k] for s in per if k in s], p) for k in names}

    def at(p: float) -> dict[str, float | None]:
        return {k: _pct([n["at"][k] for n in notes if n["at"].get(k) is not None], p) for k in STEPS}
    return {
        "recovery_viewers_traced": len(notes),
        "recovery_stage_s_p50": q(0.5),
        "recovery_stage_s_p95": q(0.95),
        "recovery_stage_s_max": {k: round(max((s[k] for s in per if k in s), default=0.0), 3) for k in names},
        "recovery_step_at_s_p95": at(0.95),
        "recovery_dead_node_tokens": sum(n["dead_tokens"] for n in notes),
        "recovery_viewers_sent_to_dead_node": sum(1 for n in notes if n["dead_tokens"]),
        "recovery_viewers_without_api": sum(1 for n in notes if n.get("held")),
        "recovery_token_failed": sum(n["token_failed"] for n in notes),
        "recovery_connect_failed": sum(n["connect_failed"] for n in notes),
        "recovery_ws_refused": sum(n["ws_refused"] for n in notes),
        "recovery_subscribe_paced": sum(n["subscribe_paced"] for n in notes),
        "recovery_viewers_paced": sum(1 for n in notes if n["subscribe_paced"]),
        "recovery_show_not_found": sum(n["not_found"] for n in notes),
        "recovery_new_nodes": dict(Counter(n["node"] for n in notes if n.get("node"))),
    }


def survivors(kept: list[dict[str, Any]]) -> dict[str, Any]:
    """The viewers of the nodes that lived, from the kill to the end (the killed node's viewers
    joining beside them): their worst loss, lowest fps and longest wait between two frames (counting
    viewers only: they note it)."""
    after = [v["after_kill"] for v in kept if v.get("after_kill") and v.get("error") is None]
    loss = [a["loss_pct"] for a in after if a["loss_pct"] is not None]
    gaps = [a["gap_ms_max"] for a in after if a["gap_ms_max"] is not None]
    return {"survivors_measured": len(after),
            "survivors_loss_pct_max": round(max(loss), 3) if loss else None,
            "survivors_fps_min": round(min(a["fps"] for a in after), 1) if after else None,
            "survivors_gap_ms_max": round(max(gaps), 1) if gaps else None,
            "survivors_gap_ms_p99": _pct(gaps, 0.99),
            "survivors_below_29_fps": sum(1 for a in after if a["fps"] < 29)}
