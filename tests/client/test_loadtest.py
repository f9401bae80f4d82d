"""``switchboard loadtest`` for 10 s against ``switchboard up``: progress lines, a summary, a report with figures."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path

import pytest

from tests.client.conftest import Register
from tests.e2e.browser import Up

pytestmark = pytest.mark.slow


async def test_loadtest_runs_and_writes_its_report(up: Up, register: Register, tmp_path: Path) -> None:
    email, password = await register("loadtest-owner")
    report = tmp_path / "report"
    env = {**os.environ, "SWITCHBOARD_EMAIL": email, "SWITCHBOARD_PASSWORD": password}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switchboard", "loadtest", "--url", up.base, "--viewers", "3", "--publishers", "2",
        "--duration", "10", "--size", "160x120", "--report", str(report), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(150):
        out, err = await proc.communicate()
    progress = err.decode()
    assert proc.returncode == 0, progress
    assert "2 publisher(s) live" in progress and "measuring" in progress and "viewers 3/3 joined" in progress
    summary = json.loads(out.decode().strip().splitlines()[-1])
    assert summary["viewers"] == 3 and summary["joined"] == 3 and summary["failed"] == 0
    assert summary["fps_mean"] > 0 and summary["bitrate_kbps_mean"] > 0

    page = (report / "report.html").read_text()
    for figure in ("join-time", "bitrate", "loss", "fps"):
        assert f'<svg id="{figure}"' in page
    assert page.count("<rect ") >= 3 * 3  # a bar per viewer in each per-viewer figure
    data = json.loads((report / "report.json").read_text())
    assert len(data["viewers"]) == 3 and all(v["join_s"] is not None for v in data["viewers"])
    assert "password" not in data["plan"]


def test_the_image_holds_the_sdk_the_cli_imports() -> None:
    """``switchboard.cli`` imports ``switchboard_client`` (the loadtest command): the image must copy it."""
    import switchboard.cli

    root = Path(__file__).resolve().parents[2]
    assert switchboard.cli.run_loadtest.__module__ == "switchboard_client.loadtest"
    assert re.search(r"^COPY switchboard_client switchboard_client$", (root / "Dockerfile").read_text(), re.M)
