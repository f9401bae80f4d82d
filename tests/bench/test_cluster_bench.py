"""``bench cluster`` at its smallest: two nodes, counting viewers and one decoding viewer, one node
killed. Every viewer gets frames, counted or decoded, and the killed node's viewers get them again
on a new peer connection (the SDK's rejoin, hooked like the first one)."""

from __future__ import annotations

import argparse

import pytest

from bench import cluster

pytestmark = pytest.mark.slow


def test_counting_and_decoding_viewers_recover_from_a_killed_node() -> None:
    parser = argparse.ArgumentParser()
    cluster.add_arguments(parser)
    args = parser.parse_args(["--nodes", "2", "--viewers", "4", "--sample", "1", "--viewers-per-node", "2",
                              "--seconds", "2", "--warmup", "1", "--kill-node", "--in-flight", "4"])
    result = cluster.run(args)
    assert result["viewers_joined"] == 4, result["join_errors"]
    assert result["viewers_decoding"] == 1
    assert sum(result["viewers_per_node"].values()) == 4
    assert result["viewer_fps_min"] > 0, "a viewer got no frame in the window"
    assert result["decoded_fps_min"] > 0, "the decoding viewer decoded nothing"
    assert result["viewer_loss_pct_max"] is not None
    assert result["killed_viewers"] >= 1
    assert result["viewers_lost"] == 0, "a viewer of the killed node never got a frame again"
    assert result["recovery_s_max"] is not None
