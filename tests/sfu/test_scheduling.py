"""Worker processes ask the kernel for a short scheduler slice (sfu/scheduling.py): read back from the
kernel's own view of each real worker process (``/proc/<pid>/sched``), and the setting that turns it off."""

from __future__ import annotations

import os
import platform
import threading
from pathlib import Path

import pytest

from sfu.pool import WorkerPool
from sfu.scheduling import request_slice
from sfu.types import FanoutConfig
from switchboard.errors import SettingsError
from switchboard.settings import load_settings

pytestmark = pytest.mark.skipif(platform.system() != "Linux" or platform.machine() not in ("x86_64", "aarch64"),
                                reason="sched_setattr: Linux on x86_64 or aarch64")


def kernel_slice_ns(pid: int, tid: int | None = None) -> int:
    """``se.slice`` of the process's main thread (or thread ``tid``), as the scheduler keeps it."""
    path = Path(f"/proc/{pid}/sched" if tid is None else f"/proc/{pid}/task/{tid}/sched")
    for line in path.read_text().splitlines():
        if line.startswith("se.slice"):
            return int(line.split(":")[1])
    raise AssertionError(f"no se.slice for {pid}: a kernel without EEVDF")


async def slices(fanout: FanoutConfig) -> list[int]:
    pool = WorkerPool(workers=2, addresses=("127.0.0.1",), fanout=fanout)
    await pool.start()
    try:
        return [kernel_slice_ns(pid) for pid in pool.pids()]
    finally:
        await pool.close()


async def test_each_worker_process_runs_with_the_slice_asked_for() -> None:
    assert await slices(FanoutConfig(slice_us=250)) == [250_000, 250_000]
    default = await slices(FanoutConfig(slice_us=0))  # the kernel's own, whatever it is on this machine
    assert len(default) == 2 and 250_000 not in default


def test_a_slice_is_clamped_to_the_kernels_range_and_zero_asks_nothing() -> None:
    assert request_slice(0) is not None  # not asked: says so
    got: list[int] = []

    def in_a_thread() -> None:  # per thread: this one only, not the test's
        assert request_slice(10) is None
        got.append(kernel_slice_ns(os.getpid(), threading.get_native_id()))

    worker = threading.Thread(target=in_a_thread)
    worker.start()
    worker.join()
    assert got == [100_000]


def test_the_setting_reaches_the_workers_config_and_is_checked() -> None:
    assert load_settings(None, {}).sfu.worker_slice_us == 300
    assert load_settings(None, {"SWITCHBOARD_SFU_WORKER_SLICE_US": "0"}).sfu.worker_slice_us == 0
    for bad in ("-1", "100001"):
        with pytest.raises(SettingsError):
            load_settings(None, {"SWITCHBOARD_SFU_WORKER_SLICE_US": bad})


def test_a_thread_under_another_policy_is_left_as_it_is() -> None:
    """An operator's policy (here SCHED_BATCH) is kept: sched_setattr would switch it to SCHED_OTHER."""
    seen: list[object] = []

    def in_a_thread() -> None:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
        before = kernel_slice_ns(os.getpid(), threading.get_native_id())
        seen.append(request_slice(250))
        seen.append(os.sched_getscheduler(0) == os.SCHED_BATCH)
        seen.append(kernel_slice_ns(os.getpid(), threading.get_native_id()) == before)

    worker = threading.Thread(target=in_a_thread)
    worker.start()
    worker.join()
    why, kept_policy, kept_slice = seen
    assert isinstance(why, str) and "policy" in why
    assert kept_policy is True and kept_slice is True
