from __future__ import annotations

import asyncio

from switchboard.tasks import stop_task


async def test_a_task_that_swallows_its_first_cancel_is_still_stopped() -> None:
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if swallowed == 0:  # as a library that eats a cancel mid-command would
                    swallowed += 1
                    asyncio.current_task().uncancel()  # type: ignore[union-attr]
                    continue
                raise

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await stop_task(task, retry_s=0.05, deadline_s=5)
    assert task.cancelled() and swallowed == 1


async def test_a_finished_task_is_left_as_it_is() -> None:
    task = asyncio.create_task(asyncio.sleep(0, result=7))
    await task
    await stop_task(task)
    assert task.result() == 7
