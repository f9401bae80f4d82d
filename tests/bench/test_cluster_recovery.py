"""The recovery breakdown of ``bench cluster --kill-node``: a viewer's SDK steps after the kill become
stages that add up to its recovery; the bench reports their quantiles and what went wrong."""

from __future__ import annotations

from bench.cluster_recovery import breakdown, stages
from sfu.cluster_viewers import recovery_steps

KILLED = 1000.0


def test_a_viewers_steps_become_stages_that_add_up_to_its_recovery() -> None:
    dead, live = "ws://127.0.0.1:1/ws", "ws://127.0.0.1:2/ws"
    steps = [(990.0, "hello", {"url": dead, "node": "node_dead"}),  # before the kill: not counted
             (1000.1, "socket_lost", {"url": dead, "node": "node_dead"}),
             (1000.2, "token_asked", {}), (1000.3, "token", {"url": dead}),
             (1000.31, "connect_failed", {"url": dead}),
             (1000.5, "token_asked", {}), (1000.6, "token", {"url": live}),
             (1000.9, "hello", {"url": live, "node": "node_live"}), (1001.0, "show_join", {}),
             (1001.5, "show_joined", {}), (1001.6, "subscribe_paced", {"retry_after": 1}),
             (1003.0, "offer", {}), (1003.1, "answered", {})]
    note = recovery_steps(KILLED, steps, [])
    assert note is not None
    assert note["at"]["lost"] == 0.1 and note["at"]["asked"] == 0.5 and note["at"]["hello"] == 0.9
    assert note["dead_tokens"] == 1 and note["connect_failed"] == 1 and note["subscribe_paced"] == 1
    assert note["node"] == "node_live" and note["at"]["frame"] is None  # no peer counted here
    note["at"].update({"ice": 3.2, "dtls": 3.1, "rtp": 3.3, "frame": 3.4})  # DTLS seen before ICE: 0, not negative
    got = stages(note["at"])
    assert got["retry_wait"] == 0.4 and got["subscribe"] == 1.5 and got["dtls"] == 0.0
    assert round(sum(got.values()), 6) == 3.4  # the stages add up to the first frame's time
    out = breakdown([{"recovery": note}, {"recovery": None}])
    assert out["recovery_viewers_traced"] == 1 and out["recovery_viewers_sent_to_dead_node"] == 1
    assert out["recovery_stage_s_p95"]["subscribe"] == 1.5 and out["recovery_new_nodes"] == {"node_live": 1}


def test_a_viewer_that_never_lost_its_socket_has_no_breakdown() -> None:
    assert recovery_steps(KILLED, [(999.0, "hello", {"url": "u", "node": "n"})], []) is None
    assert breakdown([{"recovery": None}]) == {"recovery_viewers_traced": 0}
