"""Stopping background tasks for sure.

A cancel that lands inside a library call can be swallowed (redis-py does so on some paths), after
which the task carries on and ``await task`` never returns: a process would hang at shutdown.
:func:`stop_task` cancels again until the task is done, within a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger("switchboard.tasks")


async def stop_task(task: asyncio.Task[Any], *, retry_s: float = 0.5, deadline_s: float = 5.0) -> None:
    """Cancels ``task`` and waits for it; re-cancels every ``retry_s`` until ``deadline_s``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=min(retry_s, max(0.0, end - loop.time())))
        if loop.time() >= end and not task.done():
            log.error("task %s did not stop within %.1fs", task.get_name(), deadline_s)
            return
    with contextlib.suppress(asyncio.CancelledError):
        exc = task.exception()
        if exc is not None:
            log.warning("task %s ended with %r", task.get_name(), exc)


async def stop_tasks(tasks: Iterable[asyncio.Task[Any]], **kw: float) -> None:
    """:func:`stop_task` on each, concurrently."""
    await asyncio.gather(*(stop_task(t, **kw) for t in tasks))
