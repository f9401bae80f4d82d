"""``bench cluster --drain-node``'s figures: how long the drained node's viewers saw no frame.

The bench drains one edge as ``switchboard node drain <id>`` does (:func:`switchboard.nodes.drain_node`:
``{"kind": "drain"}`` on the node's channel) and tells every viewer ``mark T`` (T: the unix time just
before the command). Each viewer notes ``mark_gap_ms`` (:func:`frame_gap_ms`): the longest wait between
two consecutive frames it received, from any of its peer connections, from T to the window's end
(``stop``). Frames of the old and the new peer connection are merged, so a client that keeps its old
peer playing until the new one has frames (make before break) shows a small gap, and one that closes
the old first (break before make) shows the whole move. :func:`drain_figures` turns the drained node's
viewers' notes into the bench's keys.
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from bench.cluster_recovery import breakdown, survivors
from bench.probes import pct
from switchboard.nodes import drain_node

POLL_S = 0.05
"""How often the bench looks whether the drained node's process has exited."""


def busiest_edge(placed: list[str | None], origin: str) -> str:
    """The node other than the show's ``origin`` with the most viewers (``placed``: each viewer's node)."""
    counts = Counter(n for n in placed if n and n != origin)
    if not counts:
        raise RuntimeError("--drain-node drains an edge: no viewer is on a node other than the origin "
                           "(--viewers-per-node C sends viewers to edges)")
    return counts.most_common(1)[0][0]


def drain(redis_url: str, node_id: str) -> float:
    """Drains ``node_id`` as ``switchboard node drain`` does; returns the unix time just before the
    command went out."""
    at = time.time()
    ok, text = asyncio.run(drain_node(redis_url, node_id))
    if not ok:
        raise RuntimeError(text)
    return at


def wait_exit(proc: subprocess.Popen[bytes], at: float, wait_s: float) -> float | None:
    """Waits until ``wait_s`` seconds after ``at`` (unix time), noting when ``proc`` exits (seconds
    after ``at``, to :data:`POLL_S`; None: still running at the end)."""
    exited: float | None = None
    while (left := at + wait_s - time.time()) > 0:
        if exited is None and proc.poll() is not None:
            exited = time.time() - at
        time.sleep(min(POLL_S if exited is None else left, left))
    return exited


def frame_gap_ms(times: Iterable[float], since: float, until: float) -> float:
    """The longest wait (ms) between two consecutive frames of one viewer from ``since`` to ``until``,
    over the arrival times of every frame it received (``times``: unix seconds, any order, any of its
    peer connections). The first wait counts from the last frame at or before ``since`` (``since``
    itself when there was none), and the wait still running at ``until`` counts too: a viewer that
    never got a frame again shows the whole span."""
    ordered = sorted(times)
    before = [t for t in ordered if t <= since]
    points = [before[-1] if before else since, *(t for t in ordered if since < t <= until), until]
    return round(1000 * max(b - a for a, b in itertools.pairwise(points)), 1)


def stall_ms(times: Iterable[float], until: float) -> float | None:
    """How long (ms) a viewer had been without a frame at ``until`` (None: it never had one): one that
    moved, got frames, and then lost its new peer connection (a worker that shed it) shows here."""
    last = max((t for t in times if t <= until), default=None)
    return round(1000 * (until - last), 1) if last is not None else None


def publisher_steps(publisher: dict[str, Any], at: float) -> dict[str, Any]:
    """The publisher's SDK steps after the drain command (``at``, unix time), in seconds after it: the
    first of each (a drained origin's broadcaster moves: ``moving``, ``hello``, ``show_create``,
    ``published``, ``publish_connected``)."""
    firsts: dict[str, float] = {}
    for t, step in publisher.get("steps") or []:
        if t >= at and step not in firsts:
            firsts[step] = round(t - at, 3)
    return {"publisher_rejoins": publisher.get("rejoins"), "publisher_steps_s": firsts}


def drain_figures(hit: list[dict[str, Any]], kept: list[dict[str, Any]], node: str,
                  exit_s: float | None) -> dict[str, Any]:
    """The drain keys of the bench's JSON. ``hit``: the results of the viewers placed on the drained
    ``node``; ``kept``: everyone else's (the survivors, measured from the command on as ``--kill-node``
    measures them); ``exit_s``: from the command to the drained node's exit (None: it had not exited).
    A viewer moved when it ended on another node with a frame on a peer connection made after the
    command; lost when it had no such frame (``viewers_lost``); stalled at the end when it had had no
    frame for over a second when the window ended (``stall_at_stop_ms``, :func:`stall_ms`)."""
    measured = [v for v in hit if v.get("error") is None and v.get("mark_gap_ms") is not None]
    gaps = [v["mark_gap_ms"] for v in measured]
    firsts = [v["recovery_s"] for v in hit if v.get("recovery_s") is not None]
    return {
        "drained_node": node,
        "drain_viewers": len(hit),
        "drain_viewers_moved": sum(1 for v in hit if v.get("recovery_s") is not None and v.get("node") != node),
        "viewers_lost": sum(1 for v in hit if v.get("recovery_s") is None),
        "drain_viewers_stayed": sum(1 for v in hit if v.get("node") == node),
        "drain_gap_ms_max": max(gaps) if gaps else None,
        "drain_gap_ms_p95": pct(gaps, 0.95),
        "drain_gap_ms_p50": pct(gaps, 0.5),
        "drain_gaps_over_1s": sum(1 for g in gaps if g > 1000),
        "drain_gap_viewers_measured": len(measured),
        "drain_viewers_stalled_at_end": sum(1 for v in measured if (v.get("stall_at_stop_ms") or 0) > 1000),
        "drain_first_new_frame_s_p95": pct(firsts, 0.95),
        "drain_first_new_frame_s_max": round(max(firsts), 2) if firsts else None,
        "drained_node_exit_s": round(exit_s, 2) if exit_s is not None else None,
        **breakdown(hit),
        **survivors(kept),
    }
