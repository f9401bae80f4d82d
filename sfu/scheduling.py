"""How soon the kernel runs a worker when a packet arrives: a short scheduler slice (a latency hint).

A worker sleeps between packets and forwards each one in well under a millisecond; what delays a
viewer's copy on a busy box is mostly the wait for a core after the packet woke the worker (1-3.5 ms
seen per wake-up on this 2-core box under load, ``perf sched timehist``), and a show cascaded over
nodes pays it once per node (origin worker, then edge worker). Linux's EEVDF scheduler (6.6+; 6.12+
lets a short slice preempt on wake-up) takes a per-thread slice from ``sched_setattr``
(``sched_runtime`` of a ``SCHED_OTHER`` thread, 0.1 to 100 ms): a task asking for a shorter slice gets
an earlier deadline, so it runs sooner after waking, and is preempted sooner if it runs long. It gets
no more CPU than before (its weight, the nice value, is unchanged), and needs no privilege.

:func:`request_slice` sets it for the calling thread (the worker's event loop) and reads it back from
the kernel's own view (``se.slice`` in ``/proc/thread-self/sched``): a kernel before EEVDF's slices
accepts the call and ignores the value, which the read-back tells. A thread under another policy
(an operator's ``SCHED_FIFO``/``RR``, ``BATCH``/``IDLE``, or with reset-on-fork set) is left as it is:
the call would switch it to ``SCHED_OTHER``. Anything else (another OS, a seccomp filter) leaves the
kernel's default and says why.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct

SCHED_OTHER = 0
SYSCALL = {"x86_64": 314, "aarch64": 274}
"""``SYS_sched_setattr`` by machine."""
ATTR = struct.Struct("IIQiIQQQII")
"""``struct sched_attr`` (version 1, 56 bytes): size, policy, flags, nice, priority, runtime, deadline,
period, util_min, util_max."""
MIN_US = 100
MAX_US = 100_000
"""The kernel clamps a fair thread's slice to 0.1-100 ms."""


def request_slice(slice_us: int) -> str | None:
    """Ask for a ``slice_us`` microsecond slice for this thread (0: leave the kernel's default).
    None when set, else why not."""
    if slice_us <= 0:
        return "not asked (sfu.worker_slice_us = 0)"
    number = SYSCALL.get(platform.machine())
    if number is None or not hasattr(os, "getpriority") or not hasattr(os, "sched_getscheduler"):
        return f"no sched_setattr on {platform.system()} {platform.machine()}"
    policy = os.sched_getscheduler(0)
    if policy != SCHED_OTHER:  # reset-on-fork shows here too (policy | 0x40000000)
        return f"left as it is: the thread runs under scheduling policy {policy:#x}, not SCHED_OTHER"
    us = min(max(slice_us, MIN_US), MAX_US)
    attr = ATTR.pack(ATTR.size, SCHED_OTHER, 0, os.getpriority(os.PRIO_PROCESS, 0), 0, us * 1000, 0, 0, 0, 0)
    buf = ctypes.create_string_buffer(attr, ATTR.size)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(number, 0, buf, 0) != 0:
        err = ctypes.get_errno()
        return f"sched_setattr refused: {os.strerror(err)}"
    kept = kernel_slice_ns()
    if kept != us * 1000:
        return f"the kernel keeps no per-thread slice (se.slice {kept}): a kernel before EEVDF's slices"
    return None


def kernel_slice_ns(path: str = "/proc/thread-self/sched") -> int | None:
    """``se.slice`` of a thread as the scheduler keeps it (this thread by default); None when the
    kernel shows none."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("se.slice"):
            return int(line.split(":")[1])
    return None
