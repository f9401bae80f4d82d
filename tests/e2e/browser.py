"""Helpers for the browser tests: a real ``switchboard up`` subprocess, accounts made over HTTP, and
headless Chromium (Debian's) with the flags WebRTC on 127.0.0.1 needs.

Chromium honours only the last ``--disable-features`` switch, and Playwright passes one of its own:
:func:`chromium_args` reads Playwright's list from a probe browser and returns it merged with
``WebRtcHideLocalIpsWithMdns`` (else host candidates are mDNS names the SFU cannot resolve), as the
bench's publisher does (bench/chromium.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Playwright

from bench.chromium import CHROMIUM, EXTRA_DISABLED, launch_args
from switchboard.embedded import free_port

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream", "--allow-loopback-in-peer-connection",
]
START_TIMEOUT_S = 60


@dataclass
class Up:
    """A running ``switchboard up``: its port, its combined output (a file) and the first-run admin."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    admin: tuple[str, str] | None = None
    users: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_up(data_dir: Path, extra_env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> Up:
    """``switchboard up [args]`` on a free port, ready (``/readyz`` 200)."""
    port = free_port()
    env = {**os.environ, "SWITCHBOARD_DATA_DIR": str(data_dir), "SWITCHBOARD_HTTP_PORT": str(port),
           "SWITCHBOARD_LOG_FORMAT": "json",
           # every test account signs in from 127.0.0.1: lift the per-address sign-in limit
           "SWITCHBOARD_API_AUTH_IP_PER_MIN": "100000",
           # Chromium and the suite load this 2-core machine: shedding on a late loop would refuse at random.
           "SWITCHBOARD_API_LAG_SHED_MS": "600000", "SWITCHBOARD_NODE_LAG_SHED_MS": "600000", **(extra_env or {})}
    env.pop("SWITCHBOARD_UPDATE_DOC_SCREENSHOTS", None)  # the tests' switch, not a setting (up refuses unknown ones)
    env.pop("SWITCHBOARD_REDIS_URL", None)
    env.pop("SWITCHBOARD_DATABASE_URL", None)
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir.parent / "up.log"
    with log.open("wb") as out:  # a file, not a pipe: nobody has to drain it while the test runs
        proc = subprocess.Popen([sys.executable, "-m", "switchboard", "up", *args], env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    up = Up(proc, port, log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"switchboard up exited early:\n{up.output()}")
        if _status(f"{up.base}/readyz") == 200:
            break
        time.sleep(0.2)
    else:
        stop_up(up)
        raise RuntimeError(f"/readyz did not answer 200 within {START_TIMEOUT_S} s:\n{up.output()}")
    # Output to a file is no terminal: up names the admin but keeps the password in the secrets file.
    saved = data_dir / "secrets" / "admin_login"
    if re.search(r"admin login \S+, password in ", up.output()) and saved.exists():
        email, password = saved.read_text().split()[:2]
        up.admin = (email, password)
    return up


@contextlib.contextmanager
def up_on_fresh_data(prefix: str, extra_env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> Iterator[Up]:
    """A ``switchboard up`` on a new data directory, stopped and its directory removed afterwards. The
    directory is outside pytest's basetemp: the embedded Postgres runs as another user and must
    traverse it."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    server = start_up(base / "var", extra_env, args)
    try:
        yield server
    finally:
        stop_up(server)
        shutil.rmtree(base, ignore_errors=True)


def stop_up(up: Up) -> None:
    if up.proc.poll() is not None:
        return
    up.proc.send_signal(signal.SIGINT)
    try:
        up.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        up.proc.kill()
        up.proc.wait(timeout=10)


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, ConnectionError):
        return 0


def call_api(up: Up, method: str, path: str, body: dict[str, Any] | None = None,
             token: str | None = None) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{up.base}/api{path}", data=data, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=10) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else {}


def mailed_code(up: Up, email: str) -> str:
    """The last verification code mailed to ``email`` (no SMTP: the mail goes to the log)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        codes = []
        for line in up.output().splitlines():
            if f"mail to {email}" in line:
                codes += re.findall(r"Use the code (\d{6})", line)
        if codes:
            return codes[-1]
        time.sleep(0.1)
    raise AssertionError(f"no code mailed to {email} within 10 s")


def account(up: Up, name: str) -> dict[str, Any]:
    """Registers, verifies and logs in ``name`` once; returns the login answer (tokens, user_id)."""
    if name not in up.users:
        email, password = f"{name}@example.com", "correct horse battery"
        call_api(up, "POST", "/auth/register", {"email": email, "password": password})
        call_api(up, "POST", "/auth/verify", {"email": email, "code": mailed_code(up, email)})
        up.users[name] = call_api(up, "POST", "/auth/login", {"email": email, "password": password})
    return up.users[name]


def admin(up: Up) -> dict[str, Any]:
    assert up.admin is not None, "the first run of up prints the admin login"
    if "admin" not in up.users:
        email, password = up.admin
        up.users["admin"] = call_api(up, "POST", "/auth/login", {"email": email, "password": password})
    return up.users["admin"]


def chromium_args(playwright: Playwright) -> tuple[list[str], list[str]]:
    """(args, ignore_default_args) for launching: Playwright's ``--disable-features`` list is
    replaced by the same list plus :data:`EXTRA_DISABLED`, so there is exactly one."""
    probe = playwright.chromium.launch(executable_path=CHROMIUM, args=[*FLAGS, "--enable-automation"])
    try:
        cdp = probe.new_browser_cdp_session()
        line = cdp.send("Browser.getBrowserCommandLine")["arguments"]
    finally:
        probe.close()
    args, theirs = launch_args(FLAGS, line)
    assert len(theirs) == 1, f"expected one --disable-features from Playwright, got {theirs}"
    return args, theirs


def launch(playwright: Playwright, args: list[str], ignore: list[str]) -> Browser:
    """A new browser (its own fresh profile directory, removed when it closes)."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[*args, "--enable-automation"],
                                         ignore_default_args=ignore)
    line = browser.new_browser_cdp_session().send("Browser.getBrowserCommandLine")["arguments"]
    disabled = [a for a in line if a.startswith("--disable-features=")]
    assert len(disabled) == 1 and EXTRA_DISABLED in disabled[0], disabled
    return browser


DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"


def doc_screenshot(page: Any, name: str) -> Path:
    """A screenshot the docs show (docs/img/``name``). Written to test-output/screenshots/ so a test
    run never dirties the checkout; ``SWITCHBOARD_UPDATE_DOC_SCREENSHOTS=1`` writes docs/img/ instead
    (then commit them)."""
    folder = DOCS_IMG if os.environ.get("SWITCHBOARD_UPDATE_DOC_SCREENSHOTS") == "1" else SHOTS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    page.screenshot(path=str(path), full_page=True)
    return path
