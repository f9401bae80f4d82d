"""``/metrics`` is never on a production process's public port: ``switchboard api`` (a real subprocess
on the test's Redis and Postgres) serves it on its internal listener only. ``switchboard up`` keeps
it on its one port (tests/test_process.py, tests/e2e/test_up.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from switchboard.cli.assembly import Process
from switchboard.embedded import free_port
from switchboard.keys import KeyPaths, ensure_secrets
from switchboard.settings import load_settings

pytestmark = pytest.mark.slow


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, ConnectionError):
        return 0, b""


@pytest.fixture
def api_process(redis_url: str, database_url: str) -> Iterator[tuple[int, int]]:
    """``switchboard api`` on free ports: (public port, metrics port)."""
    data_dir = Path(tempfile.mkdtemp(prefix="switchboard-metrics-"))
    ensure_secrets(KeyPaths.from_settings(load_settings(environ={"SWITCHBOARD_DATA_DIR": str(data_dir)})))
    port, metrics_port = free_port(), free_port()
    env = {**os.environ, "SWITCHBOARD_DATA_DIR": str(data_dir), "SWITCHBOARD_REDIS_URL": redis_url,
           "SWITCHBOARD_DATABASE_URL": database_url, "SWITCHBOARD_API_PORT": str(port),
           "SWITCHBOARD_METRICS_API_PORT": str(metrics_port), "SWITCHBOARD_LOG_FORMAT": "json"}
    log = data_dir / "api.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "switchboard", "api"], env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while _get(f"http://127.0.0.1:{port}/readyz")[0] != 200:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield port, metrics_port
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_api_serves_metrics_only_on_its_internal_listener(api_process: tuple[int, int]) -> None:
    port, metrics_port = api_process
    assert _get(f"http://127.0.0.1:{port}/api/")[0] == 200
    status, body = _get(f"http://127.0.0.1:{port}/metrics")
    assert status == 404, body[:200]
    status, body = _get(f"http://127.0.0.1:{metrics_port}/metrics")
    assert status == 200 and b'http_requests_total{method="GET",route="/api/",status="200"} 1.0' in body
    assert _get(f"http://127.0.0.1:{metrics_port}/api/")[0] == 404  # the internal listener has nothing else


async def test_a_production_root_app_has_no_metrics_route() -> None:
    proc = Process.new()
    async with TestClient(TestServer(proc.app(public_metrics=False))) as client:
        assert (await client.get("/healthz")).status == 200
        assert (await client.get("/metrics")).status == 404
    async with TestClient(TestServer(proc.metrics_listener("127.0.0.1", 0, "metrics.node_port").app)) as client:
        resp = await client.get("/metrics")
        assert resp.status == 200 and "process_cpu_seconds_total" in await resp.text()
