"""docs/sdk.md's program runs against ``switchboard up`` and prints what the page shows."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

from tests.client.conftest import Register
from tests.e2e.browser import Up

pytestmark = pytest.mark.slow

DOC = Path(__file__).resolve().parents[2] / "docs" / "sdk.md"


def _normal(text: str) -> list[str]:
    """Output lines with the room's random name made a placeholder."""
    return [re.sub(r"show-[a-z0-9]{26}", "show-<room>", line).rstrip() for line in text.strip().splitlines()]


async def test_the_show_program_of_the_doc_runs(up: Up, register: Register, tmp_path: Path) -> None:
    page = DOC.read_text()
    program = re.search(r"## A show, published and watched.*?```python\n(.*?)```", page, re.S)
    shown = re.search(r"```console\n\$ SWITCHBOARD_URL=.*?python show\.py\n(.*?)```", page, re.S)
    assert program and shown
    script = tmp_path / "show.py"
    script.write_text(program.group(1))
    host, viewer = await register("doc-host"), await register("doc-viewer")
    env = {**os.environ, "SWITCHBOARD_URL": up.base, "HOST": ":".join(host), "VIEWER": ":".join(viewer)}
    proc = await asyncio.create_subprocess_exec(sys.executable, str(script), env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    async with asyncio.timeout(90):
        out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()
    assert _normal(out.decode()) == _normal(shown.group(1)), out.decode()
