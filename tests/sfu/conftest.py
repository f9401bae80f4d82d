"""The SFU tests' shared fixture: one started Worker with the test module's ``ROOM`` open."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sfu.events import MemoryEventSink
from sfu.worker import Worker


@pytest.fixture
async def worker(request: pytest.FixtureRequest) -> AsyncIterator[Worker]:
    """A started in-process Worker (events in memory) with ``ROOM`` of the test module open; a
    module that needs another worker defines its own ``worker`` fixture."""
    w = Worker(addresses=("127.0.0.1",), events=MemoryEventSink())
    await w.start()
    await w.open_room(request.module.ROOM)
    yield w
    await w.close()
