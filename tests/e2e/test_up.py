"""``switchboard up`` as a real subprocess on free ports: ready, stoppable, restartable on its data."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import redis

from switchboard.embedded import free_port

pytestmark = pytest.mark.slow


@dataclass
class Up:
    proc: subprocess.Popen[str]
    port: int
    lines: list[str]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.proc.pid).children(recursive=True)


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, ConnectionError):
        return 0, b""


@pytest.fixture
def running() -> Iterator[list[Up]]:
    """Every ``up`` a test starts; a failing test still stops them (and so their embedded servers)."""
    ups: list[Up] = []
    yield ups
    for up in ups:
        stop_up(up)


ROOT = Path(__file__).resolve().parents[2]


def start_up(running: list[Up], data_dir: Path, command: tuple[str, ...] = ()) -> Up:
    """``switchboard up`` (or ``command`` run in the checkout, e.g. README's ``make run``) on a free port."""
    port = free_port()
    env = {**os.environ, "SWITCHBOARD_DATA_DIR": str(data_dir), "SWITCHBOARD_HTTP_PORT": str(port),
           "SWITCHBOARD_LOG_FORMAT": "json"}
    env.pop("SWITCHBOARD_REDIS_URL", None)
    env.pop("SWITCHBOARD_DATABASE_URL", None)
    proc = subprocess.Popen(
        list(command) or [sys.executable, "-m", "switchboard", "up"], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, cwd=ROOT if command else None,
    )
    up = Up(proc, port, [])
    running.append(up)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"switchboard up exited early: {proc.stdout.read() if proc.stdout else ''}"
        if _get(up.url("/readyz"))[0] == 200:
            break
        time.sleep(0.2)
    else:
        stop_up(up)
        pytest.fail("/readyz did not answer 200 within 30 s")
    return up


def stop_up(up: Up) -> list[psutil.Process]:
    """SIGINT, wait for exit, return the processes it had started (to check none survive)."""
    if up.proc.returncode is not None:
        return []
    started = up.descendants()
    # Ctrl-C reaches the whole foreground group: under `make run`, make and its `switchboard up` child.
    for proc in [psutil.Process(up.proc.pid), *psutil.Process(up.proc.pid).children()]:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGINT)
    try:
        out, _ = up.proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        for proc in [*up.descendants(), psutil.Process(up.proc.pid)]:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        out, _ = up.proc.communicate(timeout=20)
        pytest.fail("switchboard up ignored SIGINT for 20 s")
    up.lines = out.splitlines()
    return started


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
        except psutil.NoSuchProcess:
            pass
    return alive


def _listening_port(proc: psutil.Process) -> int:
    return next(c.laddr.port for c in proc.net_connections("tcp") if c.status == psutil.CONN_LISTEN)


@pytest.fixture
def data_dir(server_tmp: Path) -> Iterator[Path]:
    yield server_tmp / "var"


def test_up_serves_stops_and_restarts_on_its_data(running: list[Up], data_dir: Path) -> None:
    first = start_up(running, data_dir)
    status, body = _get(first.url("/readyz"))
    assert status == 200 and b'"ready": true' in body
    assert _get(first.url("/healthz"))[0] == 200
    assert _get(first.url("/api/"))[0] == 200
    assert b"Switchboard" in _get(first.url("/"))[1]
    assert b"http_requests_total" in _get(first.url("/metrics"))[1]
    children = first.descendants()
    names = {p.name() for p in children}
    assert "redis-server" in names and "postgres" in names

    # a fact written to the embedded Redis during the first run
    redis_password = (data_dir / "redis" / "password").read_text().strip()
    redis_port = _listening_port(next(p for p in children if p.name() == "redis-server"))
    client = redis.Redis(port=redis_port, password=redis_password)
    client.set("kept", "1")
    client.close()

    started = stop_up(first)
    assert first.proc.returncode == 0
    assert started and not _alive(started), f"left behind: {_alive(started)}"
    output = "\n".join(first.lines)
    # Standard output is a file here, not a terminal: the admin is named, the password stays in the file.
    login = re.search(r"admin login (\S+), password in (\S+)", output)
    assert login, output
    saved = data_dir / "secrets" / "admin_login"
    email, password = saved.read_text().split()
    assert email == login.group(1) and Path(login.group(2)).resolve() == saved.resolve()
    assert password not in output

    # secrets never reach the logs
    for name in ("token_ed25519.pem", "turn_secret"):
        secret = (data_dir / "secrets" / name).read_text().strip()
        body = secret.splitlines()[1] if "BEGIN" in secret else secret
        assert body not in output
    assert redis_password not in output

    second = start_up(running, data_dir)
    try:
        port = _listening_port(next(p for p in second.descendants() if p.name() == "redis-server"))
        client = redis.Redis(port=port, password=redis_password)
        assert client.get("kept") == b"1"
        client.close()
    finally:
        started = stop_up(second)
    assert not _alive(started)
    assert "admin login" not in "\n".join(second.lines)  # the admin from the first run is reused


def test_make_run_serves_readyz_and_ctrl_c_stops_it(running: list[Up], data_dir: Path) -> None:
    """README's first command, as a new user types it in the checkout: ``make run`` (the venv is current
    here, so make goes straight to ``switchboard up``), then Ctrl-C, which the terminal sends to the
    whole foreground group: make and ``switchboard up`` both get SIGINT."""
    up = start_up(running, data_dir, ("make", "--no-print-directory", "run"))
    status, body = _get(up.url("/readyz"))
    assert status == 200 and json.loads(body)["ready"] is True
    names = {p.name() for p in up.descendants()}
    assert "redis-server" in names and "postgres" in names
    started = stop_up(up)
    assert started and not _alive(started), f"left behind: {_alive(started)}"
    out = "\n".join(up.lines)
    assert ".venv/bin/switchboard up" in out and "Switchboard is up" in out, out


def test_sigterm_also_stops_everything(running: list[Up], data_dir: Path) -> None:
    up = start_up(running, data_dir)
    started = up.descendants()
    up.proc.send_signal(signal.SIGTERM)
    up.proc.communicate(timeout=20)
    assert up.proc.returncode == 0
    assert not _alive(started)


def test_planes_refuse_to_start_without_their_urls(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    for plane, key in (("node", "redis_url"), ("matchmaker", "redis_url"), ("api", "redis_url")):
        done = subprocess.run([sys.executable, "-m", "switchboard", plane], env=env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 2
        assert f"setting {key}" in done.stderr


def test_unknown_setting_stops_start_up(tmp_path: Path) -> None:
    env = {**os.environ, "SWITCHBOARD_DATA_DIR": str(tmp_path), "SWITCHBOARD_HTTP_PORTT": "1"}
    done = subprocess.run([sys.executable, "-m", "switchboard", "up"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert "setting http.portt: is not a known setting" in done.stderr
