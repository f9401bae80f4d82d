"""Local disk storage: files written whole (a temporary file, then a rename), also when two writers put
the same name at once (a clip is ingested by the request that asked for it and by the event loop)."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

from control_api.storage import LocalDiskStorage


async def test_many_puts_of_one_name_at_once_all_succeed_and_leave_one_whole_file(tmp_path: Path) -> None:
    storage = LocalDiskStorage(tmp_path / "media")
    payloads = [bytes([i]) * 200_000 for i in range(8)]
    await asyncio.gather(*(storage.put("clip-1", data) for data in payloads))
    assert await storage.get("clip-1") in payloads  # one writer's bytes, whole
    assert sorted(p.name for p in (tmp_path / "media").iterdir()) == ["clip-1"]  # no temporary file left
    assert stat.S_IMODE((tmp_path / "media" / "clip-1").stat().st_mode) == LocalDiskStorage.FILE_MODE


async def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    storage = LocalDiskStorage(tmp_path / "media")
    await storage.put("a", b"x")
    (tmp_path / "media" / "b").mkdir()  # a directory where the file would go: the rename fails
    try:
        await storage.put("b", b"y")
    except OSError:
        pass
    else:
        raise AssertionError("a rename over a directory must fail")
    assert sorted(p.name for p in (tmp_path / "media").iterdir()) == ["a", "b"]
