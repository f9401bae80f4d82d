"""``bench cluster --drain-node``'s gap: the longest wait between two frames a viewer received, over
its old and new peer connections, from the drain command to the window's end; and the figures the
bench reports from the drained node's viewers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiortc.mediastreams import VideoStreamTrack

from bench.cluster_clients import Frames, Viewer
from bench.cluster_drain import busiest_edge, drain_figures, frame_gap_ms, stall_ms
from switchboard_client import ApiClient

SINCE, UNTIL = 100.0, 110.0


def frames(start: float, end: float, fps: float = 30.0) -> list[float]:
    return [start + i / fps for i in range(int((end - start) * fps) + 1)]


def test_a_client_that_keeps_its_old_peer_playing_until_the_new_one_has_frames_shows_a_small_gap() -> None:
    old, new = frames(95.0, 101.5), frames(101.2, 110.0)  # the new peer's first frame before the old's last
    assert frame_gap_ms([*old, *new], SINCE, UNTIL) <= 34.0
    assert frame_gap_ms([*new, *old], SINCE, UNTIL) == frame_gap_ms(sorted([*old, *new]), SINCE, UNTIL)


def test_a_client_that_stops_its_old_peer_first_shows_the_whole_move() -> None:
    old, new = frames(95.0, 100.4), frames(101.9, 110.0)
    assert frame_gap_ms([*old, *new], SINCE, UNTIL) == pytest.approx(1000 * (101.9 - old[-1]), abs=0.1)


def test_the_wait_from_the_command_and_the_one_still_running_at_the_end_count() -> None:
    assert frame_gap_ms(frames(95.0, 99.0), SINCE, UNTIL) == pytest.approx(1000 * (UNTIL - frames(95.0, 99.0)[-1]),
                                                                          abs=0.1)  # lost: no frame again
    assert frame_gap_ms([], SINCE, UNTIL) == 10000.0
    assert frame_gap_ms(frames(103.0, 110.0), SINCE, UNTIL) == 3000.0  # no frame before: from the command
    assert stall_ms([*frames(95.0, 100.0), *frames(101.0, 104.0)], UNTIL) == 6000.0  # moved, then shed for good
    assert stall_ms([], UNTIL) is None
    assert frame_gap_ms([*frames(95.0, 100.0), *frames(100.5, 108.0)], SINCE, UNTIL) == pytest.approx(2000.0, abs=34)


def test_the_drained_nodes_viewers_become_the_benchs_figures() -> None:
    def viewer(node: str, recovery: float | None, gap: float | None, error: str | None = None,
               stall: float = 20.0) -> dict[str, object]:
        return {"node": node, "recovery_s": recovery, "mark_gap_ms": gap, "error": error, "recovery": None,
                "stall_at_stop_ms": stall,
                "after_kill": {"loss_pct": 0.0, "fps": 30.0, "gap_ms_max": 40.0}}

    hit = [viewer("node_b", 0.8, 120.0), viewer("node_c", 1.4, 1500.0), viewer("node_a", None, 20000.0, stall=20000.0),
           viewer("node_a", 0.5, 50.0)]
    out = drain_figures(hit, [viewer("node_b", None, 33.0)], "node_a", 2.345)
    assert out["drain_viewers"] == 4 and out["drain_viewers_moved"] == 2 and out["viewers_lost"] == 1
    assert out["drain_viewers_stayed"] == 2 and out["drain_gaps_over_1s"] == 2
    assert out["drain_viewers_stalled_at_end"] == 1
    assert out["drain_gap_ms_max"] == 20000.0 and out["drain_gap_ms_p95"] == 20000.0
    assert out["drained_node_exit_s"] == 2.35 and out["drain_first_new_frame_s_max"] == 1.4
    assert out["survivors_measured"] == 1 and out["survivors_gap_ms_max"] == 40.0
    assert drain_figures([], [], "node_a", None)["drain_gap_ms_max"] is None


def test_the_drained_node_is_the_edge_with_the_most_viewers() -> None:
    assert busiest_edge(["node_o", "node_e1", "node_e2", "node_e2", "node_o", None], "node_o") == "node_e2"
    with pytest.raises(RuntimeError, match="edge"):
        busiest_edge(["node_o", None], "node_o")


async def until(done: Callable[[], bool]) -> None:
    """Polls ``done`` (the copier runs on its own 0.05 s clock), up to 20 s."""
    for _ in range(400):
        if done():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("not reached in 20 s")


async def test_a_decoding_viewer_counts_the_frames_of_its_old_and_new_tracks_both() -> None:
    """``bench.cluster_clients``' decoding viewer reads an old track until it ends: two tracks playing
    at once (make before break) both land in its frame times."""
    v = Viewer(0, ApiClient("http://127.0.0.1:9"))
    old, new = VideoStreamTrack(), VideoStreamTrack()
    v.counters = [Frames(old)]
    copier = asyncio.create_task(v._copy())
    try:
        await until(lambda: len(v.frame_times) >= 3)
        v.peers_at_mark = 1
        v.counters.append(Frames(new))
        await until(lambda: len(v.new_peer_frames) >= 3)
        old.stop()
        new.stop()
        for counter in v.counters:
            await counter.close()
        await asyncio.sleep(0.2)  # one more copy after the last frame
    finally:
        copier.cancel()
    first, second = v.counters
    assert len(v.frame_times) == len(first.times) + len(second.times)
    assert len(v.new_peer_frames) == len(second.times)
    assert max(first.times) > min(second.times)  # the old track went on after the new one started
