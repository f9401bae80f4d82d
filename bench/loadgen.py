"""How the load generator keeps out of the way of the nodes it measures: on this machine it shares the
cores with them, where real viewers would be on machines of their own.

* Niceness (``--loadgen-nice``, from the start): the nodes get a core first when both want one.
* ``SCHED_IDLE`` over the measuring window (``--loadgen-policy idle``): a niced task can still hold a
  core for milliseconds after a node's worker was woken by a packet (EEVDF does not always preempt
  it at once; ``perf sched timehist`` showed a worker waiting 9.4 ms behind a counting viewer at nice
  10 while the other core went idle), and that wait was the tail of ``cascade_added_latency``.
  A ``SCHED_IDLE`` task runs only when no other wants the core, and a waking task takes it at once.
  Not during the joins: there the API's password hashing and the nodes' handshakes take both cores
  for seconds, and an idle-policy viewer's WebSocket handshake timed out (2 of 300 in one run).

Policies are per thread: every thread of every load generator process is set (the decoding viewers'
decoder threads too). Going back to ``SCHED_OTHER`` needs privilege or an ``RLIMIT_NICE`` allowing
the niceness; without it the processes stay idle-policy after the window (said in the result).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from bench.probes import family


def niced(nice: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` giving a load generator process ``nice``; None for 0."""
    if not nice:
        return None

    def lower() -> None:
        os.nice(nice)

    return lower


def set_policy(pids: list[int], idle: bool) -> tuple[int, int]:
    """Every thread of ``pids`` and their descendants to ``SCHED_IDLE`` (``idle``) or back to
    ``SCHED_OTHER`` (its niceness kept). Returns (threads set, threads refused); a thread that exited
    meanwhile is neither."""
    policy = os.SCHED_IDLE if idle else os.SCHED_OTHER
    done = refused = 0
    for pid in {p for root in pids for p in family(root)}:
        try:
            tids = [int(t.name) for t in Path(f"/proc/{pid}/task").iterdir()]
        except OSError:
            continue
        for tid in tids:
            try:
                os.sched_setscheduler(tid, policy, os.sched_param(0))
                done += 1
            except ProcessLookupError:
                continue
            except PermissionError:
                refused += 1
    return done, refused
