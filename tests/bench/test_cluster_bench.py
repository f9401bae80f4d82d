"""``bench cluster`` at its smallest: three nodes, counting viewers (``sfu.cluster_viewers``) and one
decoding viewer (``bench.cluster_clients``), each placed by the API. Every viewer gets frames in the
window, counted at the socket or decoded, and the figures the issue names are there."""

from __future__ import annotations

import argparse

import pytest

from bench import cluster

pytestmark = pytest.mark.slow


def test_counting_and_decoding_viewers_get_frames() -> None:
    parser = argparse.ArgumentParser()
    cluster.add_arguments(parser)
    args = parser.parse_args(["--nodes", "3", "--viewers", "4", "--sample", "1", "--viewers-per-node", "2",
                              "--seconds", "2", "--warmup", "1", "--in-flight", "4"])
    result = cluster.run(args)
    assert result["viewers_joined"] == 4, result["join_errors"]
    assert result["viewers_decoding"] == 1
    assert sum(result["viewers_per_node"].values()) == 4
    assert result["viewer_fps_min"] > 0, result
    assert result["decoded_fps_min"] > 0, "the decoding viewer decoded nothing"
    assert result["viewer_loss_pct_max"] is not None
    assert result["packets_per_s"] > 0 and result["server_us_per_packet"] > 0
    assert result["viewer_states"] == {"connected": 3}, "every counting viewer's peer connection is up"
    for key in ("nodes", "viewers", "viewers_per_node", "cascade_added_latency_ms_p99", "viewer_loss_pct_max",
                "viewer_fps_min", "loadgen_cpu_pct"):
        assert key in result
    if result["cascade_added_latency_ms_p99"] is not None:  # counting viewers on the origin and an edge
        assert result["arrival_clock"] == "kernel", "frames counted at the socket carry the kernel's receive time"


def test_a_killed_edges_viewers_come_back_and_the_others_are_watched_meanwhile() -> None:
    """``--kill-node``: the edge with viewers is killed; its viewers see frames again (their way back
    traced: by the alternate their token named, with the token they held), and the viewers of the
    nodes that lived are measured from the kill on (loss, fps, longest wait between two frames)."""
    parser = argparse.ArgumentParser()
    cluster.add_arguments(parser)
    args = parser.parse_args(["--nodes", "3", "--viewers", "6", "--viewers-per-node", "2", "--per-process", "6",
                              "--seconds", "2", "--warmup", "1", "--in-flight", "4", "--kill-node",
                              "--recovery-wait", "10"])
    result = cluster.run(args)
    assert result["viewers_joined"] == 6, result["join_errors"]
    assert result["killed_role"] == "edge" and result["killed_viewers"] > 0, result
    assert result["viewers_lost"] == 0, result
    assert result["recovery_viewers_traced"] == result["killed_viewers"]
    assert result["recovery_viewers_without_api"] == result["killed_viewers"], result
    assert result["survivors_measured"] == 6 - result["killed_viewers"]
    assert result["survivors_fps_min"] > 0 and result["survivors_gap_ms_max"] is not None, result


def test_a_drained_edges_viewers_move_and_their_longest_wait_between_frames_is_measured() -> None:
    """``--drain-node``: the edge with viewers is drained as ``switchboard node drain`` does; its viewers
    move to the other nodes and see frames again there, each one's longest wait between two frames
    (old and new peer connections together) is measured, and the drained node exits."""
    parser = argparse.ArgumentParser()
    cluster.add_arguments(parser)
    args = parser.parse_args(["--nodes", "3", "--viewers", "6", "--viewers-per-node", "2", "--per-process", "6",
                              "--seconds", "2", "--warmup", "1", "--in-flight", "4", "--drain-node",
                              "--recovery-wait", "10"])
    result = cluster.run(args)
    assert result["viewers_joined"] == 6, result["join_errors"]
    assert result["drain_viewers"] > 0 and result["drained_node"] != result["origin"], result
    assert result["viewers_lost"] == 0 and result["drain_viewers_moved"] == result["drain_viewers"], result
    assert result["drain_gap_viewers_measured"] == result["drain_viewers"]
    assert result["drain_gap_ms_max"] is not None and result["drained_node_exit_s"] is not None, result
    assert result["drained_node"] not in result["viewers_per_node_after"]
    assert result["survivors_measured"] == 6 - result["drain_viewers"]
